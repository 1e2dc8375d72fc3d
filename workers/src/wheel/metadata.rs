//! Core metadata (`METADATA`, `PKG-INFO`): version 2.4 when PEP 639 asks
//! for it (an SPDX `License-Expression`, or `License-File`s without the old
//! `License:` text), 2.1 otherwise.

use crate::project::{Author, Metadata};

/// The core metadata version `meta` needs.
pub fn version(meta: &Metadata) -> &'static str {
    if meta.license_expression.is_some() || (meta.license.is_none() && !meta.license_files.is_empty()) {
        "2.4"
    } else {
        "2.1"
    }
}

/// Renders core metadata for `meta`, in the [`version`] it needs.
pub fn render(meta: &Metadata) -> String {
    let metadata_version = version(meta);
    let mut out = String::new();
    let mut field = |name: &str, value: &str| {
        // Continuation lines of a multi-line value are indented (RFC 822 folding).
        out.push_str(name);
        out.push_str(": ");
        out.push_str(&value.replace('\n', "\n        "));
        out.push('\n');
    };
    field("Metadata-Version", metadata_version);
    field("Name", &meta.name);
    field("Version", &meta.version);
    if let Some(summary) = &meta.summary {
        field("Summary", summary.lines().next().unwrap_or(""));
    }
    if !meta.keywords.is_empty() {
        field("Keywords", &meta.keywords.join(","));
    }
    people(&meta.authors, "Author", "Author-email", &mut field);
    people(&meta.maintainers, "Maintainer", "Maintainer-email", &mut field);
    if let Some(license) = &meta.license {
        field("License", license.trim_end());
    }
    if let Some(expression) = &meta.license_expression {
        field("License-Expression", expression);
    }
    if metadata_version == "2.4" {
        // Paths as shipped: under `.dist-info/licenses/` in a wheel, at the
        // root of an sdist; the same relative path in both.
        for file in &meta.license_files {
            field("License-File", &super::slash_path(file));
        }
    }
    for classifier in &meta.classifiers {
        field("Classifier", classifier);
    }
    for (label, url) in &meta.urls {
        field("Project-URL", &format!("{label}, {url}"));
    }
    if !meta.requires_python.as_str().is_empty() {
        field("Requires-Python", meta.requires_python.as_str());
    }
    for dep in &meta.dependencies {
        field("Requires-Dist", dep);
    }
    if let Some(readme) = &meta.readme {
        field("Description-Content-Type", &readme.content_type);
        out.push('\n');
        out.push_str(&readme.content);
        if !readme.content.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

fn people(list: &[Author], name_field: &str, email_field: &str, field: &mut impl FnMut(&str, &str)) {
    let names: Vec<&str> = list.iter().filter(|a| a.email.is_none()).filter_map(|a| a.name.as_deref()).collect();
    let emails: Vec<String> = list
        .iter()
        .filter_map(|a| match (&a.name, &a.email) {
            (Some(n), Some(e)) => Some(format!("{n} <{e}>")),
            (None, Some(e)) => Some(e.clone()),
            _ => None,
        })
        .collect();
    if !names.is_empty() {
        field(name_field, &names.join(", "));
    }
    if !emails.is_empty() {
        field(email_field, &emails.join(", "));
    }
}
