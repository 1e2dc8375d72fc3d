//! Core metadata (`METADATA`, `PKG-INFO`), version 2.1.

use crate::project::{Author, Metadata};

/// Renders core metadata 2.1 for `meta`.
pub fn render(meta: &Metadata) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: &str| {
        // Continuation lines of a multi-line value are indented (RFC 822 folding).
        out.push_str(name);
        out.push_str(": ");
        out.push_str(&value.replace('\n', "\n        "));
        out.push('\n');
    };
    field("Metadata-Version", "2.1");
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
