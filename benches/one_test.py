# The smallest test suite a build can have (benches/warm.sh, TEST_FILE=):
# one test, importing the module. What the warm runner costs with it is what
# it costs with any project's tests taken away.
import pymult


def test_imports():
    assert pymult.__name__ == "pymult"
