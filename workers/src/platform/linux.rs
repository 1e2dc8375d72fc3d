//! Linux: an ELF shared object that needs nothing, not even libc.

use super::{LinkJob, LinkTools};
use crate::process::Cmd;

/// `ld.lld -shared -z noexecstack`; never against libpython (manylinux forbids it).
pub(super) fn link_command(tools: &LinkTools, job: &LinkJob<'_>) -> Cmd {
    // `-z text` refuses text relocations at link time already.
    let mut cmd = Cmd::new(&tools.linker).args(["-shared", "-z", "noexecstack", "-z", "text", "--hash-style=both"]);
    if let Some(map) = job.map {
        cmd = cmd.arg(format!("-Map={}", map.display()));
    }
    cmd.arg("-o").arg(job.output.display().to_string()).arg(job.object.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::LinkerFlavor;
    use std::path::Path;

    #[test]
    fn links_a_shared_object_without_libpython() {
        let tools = LinkTools { linker: "/usr/bin/ld.lld".into(), flavor: LinkerFlavor::Lld };
        let job = LinkJob {
            object: Path::new("m.o"),
            output: Path::new("m.abi3.so"),
            init_symbol: "PyInit_m",
            import_library: None,
            macos_min: "10.9",
            debug: false,
            map: None,
        };
        assert_eq!(
            link_command(&tools, &job).display(),
            "/usr/bin/ld.lld -shared -z noexecstack -z text --hash-style=both -o m.abi3.so m.o"
        );
    }
}
