//! The Python C API as lists of symbols: the stable ABI (`python3.dll`) and
//! every version's full API (`python3XY.dll`), taken from the `.def` files that
//! python3-dll-a carries, and the Windows import libraries made from them.
//!
//! The import libraries are generated once into the cache directory and
//! reused by every build.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::pyversion::PyVersion;

/// The python3-dll-a release whose definitions the cache holds; part of the
/// cache path so that an upgrade regenerates the libraries.
const PYTHON3_DLL_A: &str = "0.2.15";

/// Failure to produce or read the import libraries.
#[derive(Debug, thiserror::Error)]
pub enum CApiError {
    /// llvm-dlltool failed or is missing.
    #[error(
        "could not generate the Windows import libraries (needs llvm-dlltool on PATH, Debian package `llvm`): {0}"
    )]
    Generate(String),
    /// The cache could not be written or read.
    #[error("import library cache {path}: {message}")]
    Cache {
        /// The path.
        path: String,
        /// The error.
        message: String,
    },
}

/// Symbols of one DLL's `.def` file.
#[derive(Debug, Clone, Default)]
struct DefFile {
    functions: BTreeSet<String>,
    data: BTreeSet<String>,
}

impl DefFile {
    fn parse(text: &str) -> Self {
        let mut def = DefFile::default();
        let mut in_exports = false;
        for line in text.lines().map(str::trim) {
            if line.eq_ignore_ascii_case("EXPORTS") {
                in_exports = true;
                continue;
            }
            if !in_exports || line.is_empty() || line.starts_with(';') {
                continue;
            }
            let mut words = line.split_whitespace();
            let Some(name) = words.next() else { continue };
            if words.any(|w| w == "DATA") {
                def.data.insert(name.to_string());
            } else {
                def.functions.insert(name.to_string());
            }
        }
        def
    }

    fn contains(&self, symbol: &str) -> bool {
        self.functions.contains(symbol) || self.data.contains(symbol)
    }
}

/// The C API symbol lists and the import libraries for linking Windows modules.
#[derive(Debug)]
pub struct CApi {
    dir: PathBuf,
    stable: DefFile,
    versions: Vec<(PyVersion, DefFile)>,
}

impl CApi {
    /// Loads the lists from `cache_root`, generating the import libraries on
    /// first use. One instance per cache root is shared by the process.
    pub fn load(cache_root: &Path) -> Result<Arc<CApi>, CApiError> {
        static LOADED: Mutex<Option<HashMap<PathBuf, Arc<CApi>>>> = Mutex::new(None);
        let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
        let map = loaded.get_or_insert_with(HashMap::new);
        if let Some(api) = map.get(cache_root) {
            return Ok(api.clone());
        }
        let dir = ensure_libraries(cache_root)?;
        let read = |file: &str| {
            std::fs::read_to_string(dir.join(file))
                .map(|t| DefFile::parse(&t))
                .map_err(|e| CApiError::Cache { path: dir.join(file).display().to_string(), message: e.to_string() })
        };
        let stable = read("python3.def")?;
        let versions = PyVersion::known()
            .map(|v| Ok((v, read(&format!("python{}.def", v.nodot()))?)))
            .collect::<Result<_, _>>()?;
        let api = Arc::new(CApi { dir, stable, versions });
        map.insert(cache_root.to_path_buf(), api.clone());
        Ok(api)
    }

    /// Whether `symbol` is in the stable ABI (usable by abi3 modules).
    pub fn is_stable(&self, symbol: &str) -> bool {
        self.stable.contains(symbol)
    }

    /// Every name of the stable ABI, sorted (for suggesting a misspelled one).
    pub fn stable_names(&self) -> Vec<&str> {
        self.stable.functions.iter().chain(&self.stable.data).map(String::as_str).collect()
    }

    /// Whether `symbol` is exported by some CPython version's DLL.
    pub fn is_capi(&self, symbol: &str) -> bool {
        self.stable.contains(symbol) || self.versions.iter().any(|(_, d)| d.contains(symbol))
    }

    /// Whether `symbol` is exported by `version`'s DLL.
    pub fn in_version(&self, version: PyVersion, symbol: &str) -> bool {
        self.versions.iter().any(|(v, d)| *v == version && d.contains(symbol))
    }

    /// The directory holding the import libraries.
    pub fn library_dir(&self) -> &Path {
        &self.dir
    }

    /// The import library to link against: `python3.lib` for abi3, else `python3XY.lib`.
    pub fn import_library(&self, version: Option<PyVersion>) -> PathBuf {
        match version {
            None => self.dir.join("python3.lib"),
            Some(v) => self.dir.join(format!("python{}.lib", v.nodot())),
        }
    }

    /// The DLL a module of `version` imports from (`python3.dll` for abi3).
    pub fn dll_name(version: Option<PyVersion>) -> String {
        match version {
            None => "python3.dll".to_string(),
            Some(v) => format!("python{}.dll", v.nodot()),
        }
    }
}

/// Makes sure `<cache>/implib-<release>/` holds every library, building them
/// in a scratch directory first so that a crash leaves nothing half-made.
fn ensure_libraries(cache_root: &Path) -> Result<PathBuf, CApiError> {
    let dir = cache_root.join(format!("implib-{PYTHON3_DLL_A}"));
    if dir.join("complete").is_file() {
        return Ok(dir);
    }
    let cache_err =
        |path: &Path, e: std::io::Error| CApiError::Cache { path: path.display().to_string(), message: e.to_string() };
    std::fs::create_dir_all(cache_root).map_err(|e| cache_err(cache_root, e))?;
    let scratch = tempfile::tempdir_in(cache_root).map_err(|e| cache_err(cache_root, e))?;
    let generate = |version: Option<PyVersion>| {
        python3_dll_a::ImportLibraryGenerator::new("x86_64", "msvc")
            .version(version.map(|v| (v.major, v.minor)))
            .generate(scratch.path())
            .map_err(|e| CApiError::Generate(e.to_string()))
    };
    generate(None)?;
    for version in PyVersion::known() {
        generate(Some(version))?;
    }
    std::fs::write(scratch.path().join("complete"), b"").map_err(|e| cache_err(scratch.path(), e))?;
    let scratch = scratch.keep();
    if let Err(e) = std::fs::rename(&scratch, &dir) {
        // Another process finished first: use its copy.
        let _ = std::fs::remove_dir_all(&scratch);
        if !dir.join("complete").is_file() {
            return Err(cache_err(&dir, e));
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn def_files_separate_functions_from_data() {
        let def = DefFile::parse("LIBRARY python3.dll\nEXPORTS\nPyArg_ParseTuple\nPyExc_ValueError DATA\n");
        assert!(def.functions.contains("PyArg_ParseTuple"));
        assert!(def.data.contains("PyExc_ValueError"));
        assert!(!def.contains("LIBRARY"));
    }
}
