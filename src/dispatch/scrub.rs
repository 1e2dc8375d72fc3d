//! Host paths out of what a build publishes. Logs and reports are public
//! (build pages, the API); where the daemon keeps its data, its cache, the
//! users' home directories and the interpreters are none of the reader's
//! business, and a path is a hint for an attack on the host. Every line and
//! every stored report goes through one [`HostPaths`] before it is written.

use std::path::{Path, PathBuf};

use wheelwright_workers::report::BuildReport;

/// The host's places and the names they are shown by, longest first so that
/// a job directory becomes `$JOB`, not `$DATA/jobs/…`.
#[derive(Debug, Clone)]
pub struct HostPaths {
    replacements: Vec<(String, &'static str)>,
}

impl HostPaths {
    /// The daemon's places: its data and cache directories, the
    /// interpreters' installations and the home directory. Made once at
    /// start; [`HostPaths::with_build`] adds a build's own.
    pub fn of_daemon(data_dir: &Path, cache_dir: &Path, interpreter_prefixes: &[PathBuf]) -> HostPaths {
        let mut places: Vec<(PathBuf, &'static str)> =
            vec![(data_dir.to_path_buf(), "$DATA"), (cache_dir.to_path_buf(), "$CACHE")];
        // An interpreter in the system's /usr tells nothing; one in a home
        // directory (pyenv) or an odd prefix does.
        places.extend(
            interpreter_prefixes.iter().filter(|p| !p.starts_with("/usr")).map(|p| (p.to_path_buf(), "$PYTHON")),
        );
        if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
            places.push((home, "~"));
        }
        HostPaths { replacements: Vec::new() }.adding(places)
    }

    /// These places and one build's: its job directory and its stored source.
    pub fn with_build(&self, job_dir: &Path, source_dir: &Path) -> HostPaths {
        self.clone().adding(vec![(job_dir.to_path_buf(), "$JOB"), (source_dir.to_path_buf(), "$SOURCE")])
    }

    /// Adds `places`, each also in its canonical form (the one tools print
    /// after resolving links), keeping the longest first.
    fn adding(mut self, places: Vec<(PathBuf, &'static str)>) -> HostPaths {
        for (path, name) in places {
            let canonical = std::fs::canonicalize(&path).ok();
            for form in [Some(path), canonical].into_iter().flatten() {
                let text = form.display().to_string();
                // "/" or "" would replace every slash.
                if text.trim_matches('/').is_empty() {
                    continue;
                }
                self.replacements.push((text.trim_end_matches('/').to_string(), name));
            }
        }
        self.replacements.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        self.replacements.dedup();
        self
    }

    /// `text` with every host place replaced by its name.
    pub fn scrub(&self, text: &str) -> String {
        let mut text = text.to_string();
        for (path, name) in &self.replacements {
            if text.contains(path.as_str()) {
                text = text.replace(path.as_str(), name);
            }
        }
        text
    }

    /// The report with host places replaced in every text it holds (reasons,
    /// test output, crash reports, interpreter paths, artifact paths too:
    /// scrub a report after its files are stored.
    pub fn scrub_report(&self, report: &BuildReport) -> BuildReport {
        let Ok(json) = serde_json::to_string(report) else { return report.clone() };
        let mut scrubbed = json;
        for (path, name) in &self.replacements {
            // In JSON a path appears with its special characters escaped.
            let escaped = serde_json::to_string(path).unwrap_or_default();
            let escaped = escaped.trim_matches('"');
            if scrubbed.contains(escaped) {
                scrubbed = scrubbed.replace(escaped, name);
            }
        }
        serde_json::from_str(&scrubbed).unwrap_or_else(|_| report.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> HostPaths {
        HostPaths::of_daemon(
            Path::new("/srv/ww"),
            Path::new("/var/cache/ww"),
            &[PathBuf::from("/opt/py/3.11"), PathBuf::from("/usr")],
        )
        .with_build(Path::new("/srv/ww/jobs/0192"), Path::new("/srv/ww/sources/0192"))
    }

    #[test]
    fn every_host_place_is_named_not_shown() {
        let line = "$ /usr/bin/nasm -I/srv/ww/sources/0192/src/ -I/srv/ww/jobs/0192/work/include/ \
                    -o /srv/ww/jobs/0192/work/linux-x86_64/obj/m.o /srv/ww/sources/0192/src/m.asm; \
                    /var/cache/ww/smoke/venv /opt/py/3.11/bin/python3.11 /srv/ww/other";
        assert_eq!(
            paths().scrub(line),
            "$ /usr/bin/nasm -I$SOURCE/src/ -I$JOB/work/include/ -o $JOB/work/linux-x86_64/obj/m.o \
             $SOURCE/src/m.asm; $CACHE/smoke/venv $PYTHON/bin/python3.11 $DATA/other"
        );
    }

    #[test]
    fn reports_are_scrubbed_in_every_field() {
        let json = serde_json::json!({
            "project": { "name": "m", "version": "1" },
            "targets": [{
                "target": "linux-x86_64", "status": "failed", "reason": "cannot read /srv/ww/jobs/0192/work/x",
                "abi3": true, "steps": [], "artifacts": [],
                "tests": [{
                    "interpreter": "cpython-3.11", "executable": "/opt/py/3.11/bin/python3.11", "wheel": "m.whl",
                    "passed": 0, "failed": 0, "errors": 0, "skipped": 0, "failures": [],
                    "problem": "File \"/srv/ww/jobs/0192/work/t.py\"", "crash": null
                }]
            }],
            "sdist": null
        });
        let report: BuildReport = serde_json::from_value(json).unwrap();
        let scrubbed = paths().scrub_report(&report);
        let text = serde_json::to_string(&scrubbed).unwrap();
        assert!(!text.contains("/srv/ww") && !text.contains("/opt/py"), "{text}");
        assert_eq!(scrubbed.targets[0].reason.as_deref(), Some("cannot read $JOB/work/x"));
        assert_eq!(scrubbed.targets[0].tests[0].executable, PathBuf::from("$PYTHON/bin/python3.11"));
    }
}
