//! PE rules: a DLL that imports only from python3.dll or python3XY.dll.

use object::pe;
use object::read::pe::{ImageNtHeaders, PeFile64};
use object::{LittleEndian, Object};

use super::{Expect, Problem};
use crate::capi::CApi;

pub(super) fn check(file: &object::File<'_>, bytes: &[u8], expect: &Expect<'_>) -> Vec<Problem> {
    if !matches!(file, object::File::Pe64(_)) {
        return vec![Problem::Other("is not a 64-bit PE file".into())];
    }
    let pe_file = match PeFile64::parse(bytes) {
        Ok(p) => p,
        Err(e) => return vec![Problem::Unreadable(e.to_string())],
    };
    let mut problems = Vec::new();
    let characteristics = pe_file.nt_headers().file_header().characteristics.get(LittleEndian);
    if characteristics.0 & pe::IMAGE_FILE_DLL.0 == 0 {
        problems.push(Problem::Other("is not a DLL (IMAGE_FILE_DLL is not set)".into()));
    }
    let dll = CApi::dll_name(expect.python);
    match file.imports() {
        Ok(imports) => {
            let mut libraries: Vec<String> =
                imports.flatten().map(|i| String::from_utf8_lossy(i.library()).to_string()).collect();
            libraries.sort();
            libraries.dedup();
            for library in libraries {
                if !library.eq_ignore_ascii_case(&dll) {
                    problems.push(Problem::Other(format!("imports from `{library}`; only `{dll}` is allowed")));
                }
            }
        }
        Err(e) => problems.push(Problem::Unreadable(e.to_string())),
    }
    problems
}
