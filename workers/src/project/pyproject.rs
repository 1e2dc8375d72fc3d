//! `pyproject.toml`: `[project]` core metadata and `[tool.wheelwright]` settings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{io_error, Module, Overrides, ProjectError};
use crate::platform::Target;
use crate::pyversion::{PyVersion, RequiresPython};

/// Core metadata that goes into the wheel's `METADATA` and the sdist's `PKG-INFO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// Distribution name as written.
    pub name: String,
    /// PEP 440 version.
    pub version: String,
    /// One-line summary.
    pub summary: Option<String>,
    /// Long description.
    pub readme: Option<Readme>,
    /// License text (`License:`), from the table form `license = {text = …}`
    /// or `{file = …}`.
    pub license: Option<String>,
    /// A PEP 639 SPDX expression (`license = "MIT"`), operators normalised.
    pub license_expression: Option<String>,
    /// License files to ship under `.dist-info/licenses/`, relative to the
    /// root, sorted: the `{file = …}` one, or PEP 639's `license-files`
    /// matches (by default `LICEN[CS]E*`, `COPYING*`, `NOTICE*`, `AUTHORS*`).
    pub license_files: Vec<PathBuf>,
    /// Authors.
    pub authors: Vec<Author>,
    /// Maintainers.
    pub maintainers: Vec<Author>,
    /// Keywords.
    pub keywords: Vec<String>,
    /// `requires-python`.
    pub requires_python: RequiresPython,
    /// Project URLs, label → URL.
    pub urls: BTreeMap<String, String>,
    /// Trove classifiers.
    pub classifiers: Vec<String>,
    /// PEP 508 requirements.
    pub dependencies: Vec<String>,
}

/// The long description and its content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readme {
    /// The text.
    pub content: String,
    /// `text/markdown`, `text/x-rst` or `text/plain`.
    pub content_type: String,
    /// The file it came from, relative to the root.
    pub path: Option<PathBuf>,
}

/// An author or maintainer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Author {
    /// Name.
    pub name: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
}

/// `[tool.wheelwright]`, with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Targets to build when the caller names none.
    pub targets: Vec<Target>,
    /// Assemble with debug information.
    pub debug: bool,
    /// Extra nasm defines, `NAME` or `NAME=VALUE`.
    pub defines: Vec<String>,
    /// macOS deployment target, e.g. `10.9`.
    pub macos_deployment_target: String,
    /// `Some(true)`: must be abi3; `Some(false)`: never; `None`: decided from the imports.
    pub abi3: Option<bool>,
    /// CPython versions to tag version-specific wheels for.
    pub python_versions: Vec<PyVersion>,
    /// The static ABI check: `lint` and `[tool.wheelwright.lint-rules]`.
    pub lint: crate::lint::LintConfig,
    /// Run the tests on warm runners where the host offers them
    /// (`warm-tests`, default true; see [`crate::warm`]).
    pub warm_tests: bool,
}

#[derive(Debug, Default, Deserialize)]
struct PyProject {
    project: Option<ProjectTable>,
    tool: Option<Tools>,
}

#[derive(Debug, Default, Deserialize)]
struct Tools {
    wheelwright: Option<ToolTable>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ProjectTable {
    name: Option<String>,
    version: Option<String>,
    description: Option<String>,
    readme: Option<ReadmeField>,
    license: Option<LicenseField>,
    license_files: Option<Vec<String>>,
    #[serde(default)]
    authors: Vec<Author>,
    #[serde(default)]
    maintainers: Vec<Author>,
    #[serde(default)]
    keywords: Vec<String>,
    requires_python: Option<String>,
    #[serde(default)]
    urls: BTreeMap<String, String>,
    #[serde(default)]
    classifiers: Vec<String>,
    #[serde(default)]
    dependencies: Vec<String>,
    #[serde(default)]
    dynamic: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ReadmeField {
    Path(String),
    Table {
        file: Option<String>,
        text: Option<String>,
        #[serde(rename = "content-type")]
        content_type: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum LicenseField {
    Expression(String),
    Table { file: Option<String>, text: Option<String> },
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct ToolTable {
    targets: Option<Vec<String>>,
    debug: Option<bool>,
    #[serde(default)]
    defines: Vec<String>,
    macos_deployment_target: Option<String>,
    abi3: Option<bool>,
    python_versions: Option<Vec<String>>,
    lint: Option<String>,
    #[serde(default)]
    lint_rules: BTreeMap<String, String>,
    warm_tests: Option<bool>,
}

fn invalid(key: &str, message: impl Into<String>) -> ProjectError {
    ProjectError::InvalidKey { key: key.to_string(), message: message.into() }
}

pub(super) fn parse(
    root: &Path,
    text: Option<&str>,
    modules: &[Module],
    overrides: &Overrides,
) -> Result<(Metadata, Settings), ProjectError> {
    let doc: PyProject = match text {
        Some(text) => toml::from_str(text).map_err(|e| ProjectError::Toml(e.to_string().trim_end().to_string()))?,
        None => PyProject::default(),
    };
    let project = doc.project.unwrap_or_default();
    let tool = doc.tool.and_then(|t| t.wheelwright).unwrap_or_default();
    if let Some(field) = project.dynamic.first() {
        return Err(invalid("project.dynamic", format!("wheelwright does not compute dynamic metadata (`{field}`)")));
    }

    let name = match project.name.or_else(|| overrides.name.clone()) {
        Some(name) => name,
        None if modules.len() == 1 => modules[0].leaf().to_string(),
        None => return Err(ProjectError::NoName),
    };
    if !is_valid_name(&name) {
        return Err(invalid("project.name", format!("`{name}` is not a valid distribution name")));
    }
    let version = project.version.or_else(|| overrides.version.clone()).unwrap_or_else(|| "0.1.0".to_string());
    if !is_valid_version(&version) {
        return Err(invalid("project.version", format!("`{version}` is not a PEP 440 version such as 1.0.2")));
    }
    let requires_python = match &project.requires_python {
        Some(spec) => RequiresPython::parse(spec).map_err(|m| invalid("project.requires-python", m))?,
        None => RequiresPython::default(),
    };
    let readme = match project.readme {
        Some(field) => Some(read_readme(root, field)?),
        // An upload without `pyproject.toml` is described by its README.
        None if text.is_none() => root_readme(root)?,
        None => None,
    };
    let license = license(root, project.license, project.license_files, &project.classifiers)?;
    for (i, author) in project.authors.iter().chain(&project.maintainers).enumerate() {
        if author.name.is_none() && author.email.is_none() {
            return Err(invalid("project.authors", format!("entry {} has neither name nor email", i + 1)));
        }
    }
    let metadata = Metadata {
        name,
        version,
        summary: project.description,
        readme,
        license: license.text,
        license_expression: license.expression,
        license_files: license.files,
        authors: project.authors,
        maintainers: project.maintainers,
        keywords: project.keywords,
        requires_python,
        urls: project.urls,
        classifiers: project.classifiers,
        dependencies: project.dependencies,
    };
    let settings = settings(tool, &metadata, overrides)?;
    Ok((metadata, settings))
}

/// The license as core metadata sees it.
struct License {
    text: Option<String>,
    expression: Option<String>,
    files: Vec<PathBuf>,
}

/// PEP 639's defaults for `license-files`, matched at the root.
const DEFAULT_LICENSE_GLOBS: [&str; 4] = ["LICEN[CS]E*", "COPYING*", "NOTICE*", "AUTHORS*"];

/// `project.license` in either form, and the license files it ships.
fn license(
    root: &Path,
    field: Option<LicenseField>,
    globs: Option<Vec<String>>,
    classifiers: &[String],
) -> Result<License, ProjectError> {
    let table = matches!(field, Some(LicenseField::Table { .. }));
    if table && globs.is_some() {
        // PEP 639: the two describe the same thing; the table is the old way.
        return Err(invalid(
            "project.license-files",
            "needs `license` to be an SPDX expression string (license = \"MIT\"), not a table",
        ));
    }
    let mut files = match globs {
        Some(globs) => license_files(root, &globs, true)?,
        None if !table => license_files(root, &DEFAULT_LICENSE_GLOBS.map(String::from), false)?,
        None => Vec::new(),
    };
    let (text, expression) = match field {
        None => (None, None),
        Some(LicenseField::Expression(expr)) => {
            let expression = super::spdx::normalize(&expr).map_err(|m| invalid("project.license", m))?;
            if let Some(c) = classifiers.iter().find(|c| c.starts_with("License ::")) {
                return Err(invalid(
                    "project.classifiers",
                    format!("`{c}`: with an SPDX `license` expression, license classifiers are not allowed (PEP 639)"),
                ));
            }
            (None, Some(expression))
        }
        Some(LicenseField::Table { text: Some(text), file: None }) => (Some(text), None),
        Some(LicenseField::Table { file: Some(file), text: None }) => {
            let path = safe_relative(&file)
                .ok_or_else(|| invalid("project.license.file", "must be a path inside the project"))?;
            let text = std::fs::read_to_string(root.join(&path)).map_err(|e| io_error(&root.join(&path), &e))?;
            files.push(path);
            (Some(text), None)
        }
        Some(LicenseField::Table { .. }) => {
            return Err(invalid("project.license", "give exactly one of `file` and `text`"))
        }
    };
    Ok(License { text, expression, files })
}

/// The files under `root` that `globs` match, sorted. A pattern the author
/// wrote (`declared`) must match a file (PEP 639); the defaults need not.
fn license_files(root: &Path, globs: &[String], declared: bool) -> Result<Vec<PathBuf>, ProjectError> {
    let key = "project.license-files";
    let mut matchers = Vec::new();
    for glob in globs {
        // PEP 639's pattern syntax: relative, `/`-separated, no `..`.
        let allowed = |c: char| c.is_ascii_alphanumeric() || "._-*?[]/!".contains(c);
        if glob.is_empty() || glob.starts_with('/') || glob.split('/').any(|p| p == "..") || !glob.chars().all(allowed)
        {
            return Err(invalid(key, format!("`{glob}` is not a relative glob pattern inside the project")));
        }
        let matcher = globset::GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
            .map_err(|e| invalid(key, format!("`{glob}`: {e}")))?
            .compile_matcher();
        matchers.push((glob, matcher));
    }
    let candidates = if !declared || globs.iter().all(|g| !g.contains('/')) {
        super::layout::root_files(root)?
    } else {
        super::layout::all_files(root)?
    };
    let mut found = Vec::new();
    for (glob, matcher) in &matchers {
        let before = found.len();
        found.extend(candidates.iter().filter(|f| matcher.is_match(f.as_path())).cloned());
        if declared && found.len() == before {
            return Err(invalid(key, format!("`{glob}` matches no file")));
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

fn settings(tool: ToolTable, metadata: &Metadata, overrides: &Overrides) -> Result<Settings, ProjectError> {
    let targets = match tool.targets {
        None => Target::ALL.to_vec(),
        Some(list) if list.is_empty() => {
            return Err(invalid("tool.wheelwright.targets", "must name at least one target"))
        }
        Some(list) => {
            Target::parse_list(&list.join(",")).map_err(|e| invalid("tool.wheelwright.targets", e.to_string()))?
        }
    };
    for define in &tool.defines {
        let name = define.split_once('=').map_or(define.as_str(), |(n, _)| n);
        let mut chars = name.chars();
        let valid = matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
            && chars.all(|c| c == '_' || c.is_ascii_alphanumeric());
        if !valid {
            return Err(invalid("tool.wheelwright.defines", format!("`{define}` is not NAME or NAME=VALUE")));
        }
    }
    let macos = tool.macos_deployment_target.unwrap_or_else(|| "10.9".to_string());
    let parts: Vec<&str> = macos.split('.').collect();
    if !(parts.len() == 2 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))) {
        return Err(invalid(
            "tool.wheelwright.macos-deployment-target",
            format!("`{macos}` is not a version such as 10.9 or 11.0"),
        ));
    }
    let python_versions = match tool.python_versions {
        Some(list) => {
            if tool.abi3 == Some(true) {
                return Err(invalid(
                    "tool.wheelwright.python-versions",
                    "contradicts `abi3 = true`: an abi3 wheel serves every version",
                ));
            }
            let mut versions = Vec::new();
            for v in &list {
                let v: PyVersion = v.parse().map_err(|m: String| invalid("tool.wheelwright.python-versions", m))?;
                if !PyVersion::known().any(|k| k == v) {
                    return Err(invalid(
                        "tool.wheelwright.python-versions",
                        format!("wheelwright does not know the C API of Python {v}"),
                    ));
                }
                if !metadata.requires_python.admits(v) {
                    return Err(invalid(
                        "tool.wheelwright.python-versions",
                        format!("{v} is excluded by requires-python `{}`", metadata.requires_python.as_str()),
                    ));
                }
                versions.push(v);
            }
            versions.sort();
            versions.dedup();
            versions
        }
        None => (PyVersion::DEFAULT_MIN.minor..=PyVersion::NEWEST.minor)
            .map(|m| PyVersion::new(3, m))
            .filter(|v| metadata.requires_python.admits(*v))
            .collect(),
    };
    if python_versions.is_empty() && tool.abi3 != Some(true) {
        return Err(invalid("project.requires-python", "admits no CPython version wheelwright can build for"));
    }
    let lint = lint_config(tool.lint.as_deref(), &tool.lint_rules)?;
    Ok(Settings {
        targets,
        debug: tool.debug.unwrap_or(false) || overrides.debug,
        defines: tool.defines,
        macos_deployment_target: macos,
        abi3: tool.abi3,
        python_versions,
        lint,
        warm_tests: tool.warm_tests.unwrap_or(true),
    })
}

/// `lint = "strict" | "default" | "off"` and `[tool.wheelwright.lint-rules]`
/// (`rule-id = "error" | "warn" | "allow"`).
fn lint_config(level: Option<&str>, rules: &BTreeMap<String, String>) -> Result<crate::lint::LintConfig, ProjectError> {
    use crate::lint::{Level, LintConfig, Rule, RuleLevel};
    let mut config = LintConfig::default();
    if let Some(word) = level {
        config.level = Level::parse(word)
            .ok_or_else(|| invalid("tool.wheelwright.lint", format!("`{word}` is not one of strict, default, off")))?;
    }
    for (id, word) in rules {
        let key = format!("tool.wheelwright.lint-rules.{id}");
        let rule = Rule::from_id(id).ok_or_else(|| invalid(&key, "no such rule"))?;
        let level = RuleLevel::parse(word)
            .ok_or_else(|| invalid(&key, format!("`{word}` is not one of error, warn, allow")))?;
        config.rules.insert(rule, level);
    }
    Ok(config)
}

fn read_readme(root: &Path, field: ReadmeField) -> Result<Readme, ProjectError> {
    let (file, text, content_type) = match field {
        ReadmeField::Path(path) => (Some(path), None, None),
        ReadmeField::Table { file, text, content_type } => (file, text, content_type),
    };
    match (file, text) {
        (Some(file), None) => {
            let path =
                safe_relative(&file).ok_or_else(|| invalid("project.readme", "must be a path inside the project"))?;
            let content = std::fs::read_to_string(root.join(&path)).map_err(|e| io_error(&root.join(&path), &e))?;
            let content_type = content_type.unwrap_or_else(|| content_type_for(&path).to_string());
            Ok(Readme { content, content_type, path: Some(path) })
        }
        (None, Some(content)) => {
            let content_type =
                content_type.ok_or_else(|| invalid("project.readme.content-type", "is required with `text`"))?;
            Ok(Readme { content, content_type, path: None })
        }
        _ => Err(invalid("project.readme", "give exactly one of `file` and `text`")),
    }
}

/// The README at the root (`.md`, `.rst` or `.txt`, in that order), read
/// only when it is a regular file (a link is not followed).
fn root_readme(root: &Path) -> Result<Option<Readme>, ProjectError> {
    for name in ["README.md", "README.rst", "README.txt"] {
        if std::fs::symlink_metadata(root.join(name)).is_ok_and(|m| m.is_file()) {
            return read_readme(root, ReadmeField::Path(name.to_string())).map(Some);
        }
    }
    Ok(None)
}

fn content_type_for(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("md") | Some("markdown") => "text/markdown",
        Some("rst") => "text/x-rst",
        _ => "text/plain",
    }
}

/// A relative path that stays inside the project, or `None`.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    p.components().all(|c| matches!(c, std::path::Component::Normal(_))).then(|| p.to_path_buf())
}

/// PEP 508 distribution name.
fn is_valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A PEP 440 public version in its usual spellings: `1`, `1.2.3`, `1.0a1`,
/// `1.0rc2`, `1.0.post1`, `1.0.dev3`, `2!1.0`.
fn is_valid_version(v: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let v = match v.split_once('!') {
        Some((epoch, rest)) if digits(epoch) => rest,
        Some(_) => return false,
        None => v,
    };
    // The release is digits separated by dots, up to the first suffix.
    let suffix_at = ["a", "b", "rc", ".post", ".dev"].iter().filter_map(|p| v.find(p)).min().unwrap_or(v.len());
    if !v[..suffix_at].split('.').all(digits) {
        return false;
    }
    let mut rest = &v[suffix_at..];
    for prefix in ["a", "b", "rc", ".post", ".dev"] {
        if let Some(after) = rest.strip_prefix(prefix) {
            let n = after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len());
            if n == 0 {
                return false;
            }
            rest = &after[n..];
        }
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_names() {
        for ok in ["1", "0.1.0", "1.0a1", "2.0rc3", "1.0.post2", "1.0.dev1", "1!2.0"] {
            assert!(is_valid_version(ok), "{ok}");
        }
        for bad in ["", "1.", "v1.0", "1.0-beta", "1..2", "1.0a"] {
            assert!(!is_valid_version(bad), "{bad}");
        }
        assert!(is_valid_name("py-mult_2.x"));
        assert!(!is_valid_name("-pymult") && !is_valid_name("py mult") && !is_valid_name(""));
    }
}
