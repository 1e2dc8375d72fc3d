//! macOS: a Mach-O bundle whose Python symbols are looked up when it loads.

use super::{LinkJob, LinkTools, LinkerFlavor};
use crate::process::Cmd;

/// `ld64.lld -bundle -undefined dynamic_lookup`, or Apple's `ld` with the same
/// options (it spells the version option alike since Xcode 14).
pub(super) fn link_command(tools: &LinkTools, job: &LinkJob<'_>) -> Cmd {
    let mut cmd = Cmd::new(&tools.linker).args(["-arch", "x86_64", "-platform_version", "macos"]);
    // The SDK version is written next to the minimum; the same value is honest
    // for a module that uses no SDK at all.
    cmd = cmd.arg(job.macos_min).arg(job.macos_min);
    cmd = cmd.args(["-bundle", "-undefined", "dynamic_lookup"]);
    if tools.flavor == LinkerFlavor::Native {
        // Apple's ld wants to know the module exports only its init function.
        cmd = cmd.arg("-exported_symbol").arg(format!("_{}", job.init_symbol));
    }
    if let Some(map) = job.map {
        cmd = cmd.arg("-map").arg(map.display().to_string());
    }
    cmd.arg("-o").arg(job.output.display().to_string()).arg(job.object.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn job() -> LinkJob<'static> {
        LinkJob {
            object: Path::new("m.o"),
            output: Path::new("m.abi3.so"),
            init_symbol: "PyInit_m",
            import_library: None,
            macos_min: "10.9",
            debug: false,
            map: None,
        }
    }

    #[test]
    fn lld_links_a_bundle_with_dynamic_lookup() {
        let tools = LinkTools { linker: "ld64.lld".into(), flavor: LinkerFlavor::Lld };
        assert_eq!(
            link_command(&tools, &job()).display(),
            "ld64.lld -arch x86_64 -platform_version macos 10.9 10.9 -bundle -undefined dynamic_lookup -o m.abi3.so m.o"
        );
    }

    #[test]
    fn apples_ld_also_limits_the_exports() {
        let tools = LinkTools { linker: "/usr/bin/ld".into(), flavor: LinkerFlavor::Native };
        assert_eq!(
            link_command(&tools, &job()).display(),
            "/usr/bin/ld -arch x86_64 -platform_version macos 10.9 10.9 -bundle -undefined dynamic_lookup \
             -exported_symbol _PyInit_m -o m.abi3.so m.o"
        );
    }
}
