//! Reading pytest's JUnit XML.

use crate::report::{TestFailure, TestRun};

/// Adds the results in `xml` to `run`; false when the XML is unreadable.
pub fn parse_into(xml: &str, run: &mut TestRun) -> bool {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return false;
    };
    for case in doc.descendants().filter(|n| n.has_tag_name("testcase")) {
        let class = case.attribute("classname").unwrap_or("");
        let name = case.attribute("name").unwrap_or("");
        let test = if class.is_empty() { name.to_string() } else { format!("{class}::{name}") };
        let outcome = case
            .children()
            .find(|c| c.is_element() && ["failure", "error", "skipped"].iter().any(|t| c.has_tag_name(*t)));
        match outcome {
            None => run.passed += 1,
            Some(node) if node.has_tag_name("skipped") => run.skipped += 1,
            Some(node) => {
                if node.has_tag_name("failure") {
                    run.failed += 1;
                } else {
                    run.errors += 1;
                }
                let text = node.text().unwrap_or("").trim();
                let message = if text.is_empty() { node.attribute("message").unwrap_or("") } else { text };
                run.failures.push(TestFailure { test, message: message.to_string() });
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pytest_junit_xml() {
        let xml = r#"<?xml version="1.0"?><testsuites><testsuite name="pytest" errors="0" failures="1" skipped="1" tests="4">
            <testcase classname="tests.test_m" name="test_ok" time="0.001"/>
            <testcase classname="tests.test_m" name="test_ok2" time="0.001"/>
            <testcase classname="tests.test_m" name="test_bad" time="0.001"><failure message="assert 1 == 2">def test_bad():
&gt;       assert 1 == 2</failure></testcase>
            <testcase classname="tests.test_m" name="test_skip" time="0.001"><skipped type="pytest.skip" message="no"/></testcase>
            </testsuite></testsuites>"#;
        let mut run = TestRun::new("cpython-3.11", "python3".into(), "w.whl");
        assert!(parse_into(xml, &mut run));
        assert_eq!((run.passed, run.failed, run.errors, run.skipped), (2, 1, 0, 1));
        assert_eq!(run.failures[0].test, "tests.test_m::test_bad");
        assert!(run.failures[0].message.contains("assert 1 == 2"));
        assert!(!parse_into("<unclosed", &mut run));
    }
}
