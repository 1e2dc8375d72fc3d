//! Windows: an MSVC-style DLL that imports from python3.dll or python3XY.dll.

use super::{LinkJob, LinkTools};
use crate::process::Cmd;

/// `lld-link` and `link.exe` take the same options.
pub(super) fn link_command(tools: &LinkTools, job: &LinkJob<'_>) -> Cmd {
    let mut cmd = Cmd::new(&tools.linker).args(["/NOLOGO", "/DLL", "/NOENTRY", "/MACHINE:X64"]);
    cmd = cmd.arg(format!("/EXPORT:{}", job.init_symbol));
    // No timestamp in the header: identical input gives identical bytes.
    cmd = cmd.arg("/Brepro");
    cmd = cmd.arg(if job.debug { "/DEBUG" } else { "/DEBUG:NONE" });
    if let Some(map) = job.map {
        cmd = cmd.arg(format!("/MAP:{}", map.display()));
    }
    cmd = cmd.arg(format!("/OUT:{}", job.output.display())).arg(job.object.display().to_string());
    if let Some(lib) = job.import_library {
        cmd = cmd.arg(lib.display().to_string());
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::LinkerFlavor;
    use std::path::Path;

    #[test]
    fn links_a_dll_exporting_the_init_function() {
        let tools = LinkTools { linker: "link.exe".into(), flavor: LinkerFlavor::Native };
        let job = LinkJob {
            object: Path::new("m.obj"),
            output: Path::new("m.pyd"),
            init_symbol: "PyInit_m",
            import_library: Some(Path::new("python3.lib")),
            macos_min: "10.9",
            debug: false,
            map: None,
        };
        assert_eq!(
            link_command(&tools, &job).display(),
            "link.exe /NOLOGO /DLL /NOENTRY /MACHINE:X64 /EXPORT:PyInit_m /Brepro /DEBUG:NONE /OUT:m.pyd m.obj python3.lib"
        );
    }
}
