//! The gate's results as CI systems read them.

use std::fmt::Write;

/// One rule checked on one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub rule: String,
    pub target: String,
    pub passed: bool,
    /// The figure checked and, where it failed, why.
    pub message: String,
}

fn xml(text: &str) -> String {
    crate::html::esc(text)
}

/// JUnit XML: one test case per check, a failure for each that failed.
pub fn junit(checks: &[Check]) -> String {
    let failures = checks.iter().filter(|c| !c.passed).count();
    let mut out = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites><testsuite name=\"candor gate\" tests=\"{}\" failures=\"{failures}\">\n", checks.len());
    for c in checks {
        let _ = write!(
            out,
            "<testcase classname=\"{}\" name=\"{}\">",
            xml(&c.target),
            xml(&c.rule)
        );
        if !c.passed {
            let _ = write!(out, "<failure message=\"{}\"/>", xml(&c.message));
        }
        out.push_str("</testcase>\n");
    }
    out.push_str("</testsuite></testsuites>\n");
    out
}
