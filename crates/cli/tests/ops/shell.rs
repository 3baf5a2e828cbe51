//! The interactive shell, driven through a pseudo-terminal.

use crate::common::pty::Pty;
use crate::common::*;
use shmkv::client::{Client, ClientConfig};

fn temp_path(what: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("shmkv-ops-{}-{what}", unique_name()))
}

#[test]
fn the_shell_through_a_pseudo_terminal() {
    let s = ServerProc::start(&["10", "2", "1"]);
    let history = temp_path("history");
    let mut t = Pty::spawn(
        CLIENT,
        &["--name", &s.name, "0"],
        &[("SHMKV_HISTORY", history.to_str().unwrap())],
    );
    let prompt = format!("shmkv[{}:0]> ", s.name);
    t.expect(&format!("connected to server '{}' as client 0", s.name));
    t.expect(&prompt);

    // Tab completes the command as far as it is unique ('insert' and 'insert-new' share
    // 'insert'), a second Tab lists the candidates; several operations on one line run as
    // one batch.
    t.send("ins\t");
    t.expect("insert");
    t.send("\t");
    t.expect("insert-new");
    t.send(" 1 2 rea\t");
    t.expect("read ");
    t.send("1\r");
    t.expect("insert 1 2: ok\n");
    t.expect("read 1: 2\n");
    t.expect(&prompt);

    // A refusal and a line that does not parse are shown, and the shell stays.
    t.send("print 99\r");
    t.expect("shmkv-client: print 99: error: bucket 99 out of range (the table has 10 buckets");
    t.expect(&prompt);
    t.send("frob 3\r");
    t.expect("unknown operation 'frob'");
    t.expect(&prompt);
    t.send("read\r");
    t.expect("'read' needs a key");
    t.expect(&prompt);

    t.send("help\r");
    let help = t.expect(&prompt);
    assert!(help.contains("insert <key> <value>"), "{help}");
    assert!(help.contains("Shell commands:"), "{help}");
    assert!(help.contains("Ctrl-D"), "{help}");

    // Two Tabs list what may follow 'threads'.
    t.send("threads \t\t");
    t.expect("start  stop");
    t.expect(&format!("{prompt}threads "));
    t.send("\x15"); // Ctrl-U: clear the line
    t.send("stats\r");
    t.expect("stats\n");
    let stats = t.expect(&prompt);
    assert!(
        stats.starts_with("stats:\n  requests   4 (insert 1, read 1,"),
        "{stats}"
    );
    assert!(
        stats.contains("  table      1 entry, 10 buckets"),
        "{stats}"
    );

    // History: Up six times reaches the first line (before print, frob, read, help, stats).
    t.send("\x1b[A\x1b[A\x1b[A\x1b[A\x1b[A\x1b[A\r");
    t.expect("insert 1 2 read 1");
    t.expect("insert 1 2: ok, replaced 2\n");
    t.expect(&prompt);

    // Ctrl-D leaves with status 0 and the server sees the client go.
    t.send("\x04");
    let (code, seen) = t.wait();
    assert_eq!(code, 0, "{seen}");
    let saved = std::fs::read_to_string(&history).unwrap();
    let _ = std::fs::remove_file(&history);
    assert!(saved.contains("insert 1 2 read 1"), "{saved}");
    assert!(saved.contains("print 99"), "{saved}");
    wait_until(DEADLINE, || owner_of(&s.name, 0) == 0);
    s.client(&["0", "read", "1"]).ok("read 1: 2\n");
    s.quit_and_check_clean();
}

#[test]
fn the_shell_ends_on_exit_and_on_quit() {
    let s = ServerProc::start(&["10", "2", "1"]);
    let mut t = Pty::spawn(CLIENT, &["--name", &s.name], &[("SHMKV_HISTORY", "")]);
    let prompt = format!("shmkv[{}:0]> ", s.name);
    t.expect(&prompt);
    t.send("exit\r");
    assert_eq!(t.wait().0, 0);

    // The id '-' takes the first free slot: slot 1 while this process holds slot 0.
    let held = Client::connect(&ClientConfig::new(&s.name).slot(0)).unwrap();
    let mut t = Pty::spawn(
        CLIENT,
        &["--name", &s.name, "--json", "-"],
        &[("SHMKV_HISTORY", "")],
    );
    let prompt = format!("shmkv[{}:1]> ", s.name);
    t.expect(&prompt);
    t.send("insert 4 5\r");
    t.expect(r#"{"op":"insert","key":"4","value":"5","previous":null,"status":"ok"}"#);
    t.expect(&prompt);
    t.send("quit\r");
    t.expect(r#"{"op":"quit","status":"ok"}"#);
    assert_eq!(t.wait().0, 0);
    drop(held);
    s.wait_exit_and_check_clean();
}
