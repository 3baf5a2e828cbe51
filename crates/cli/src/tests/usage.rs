//! Tests of the operations help.

use super::*;

// --- help ------------------------------------------------------------------------------

#[test]
fn help_lists_every_verb_from_the_table() {
    let h = operations_help();
    for info in &VERBS {
        let line = h
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{} ", info.name)))
            .unwrap_or_else(|| panic!("{} missing:\n{h}", info.name));
        assert!(line.ends_with(info.summary), "{line}");
    }
    assert!(h.contains("  insert <key> <value>  "));
    assert!(h.contains("  cas <key> <expected>|--absent <new>  "));
    assert!(h.contains("  scan <cursor> [<count>]  "));
    assert!(h.contains("  threads start <n>  "));
    assert!(h.contains("\\xHH"));
    assert!(h.contains("redis-cli"));
    assert!(h.contains("--absent"));
    assert!(h.lines().all(|l| l.chars().count() <= 100), "{h}");
}
