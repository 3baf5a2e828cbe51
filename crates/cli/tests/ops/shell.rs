//! The interactive shell, driven through a pseudo-terminal.

use crate::common::*;
use shmkv::client::{Client, ClientConfig};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

// ---------------------------------------------------------------------------------------------
// A pseudo-terminal driver: the child gets the slave side as its controlling terminal and its
// stdin, stdout and stderr; the test reads the master side with deadlines (poll), never sleeps.

struct Pty {
    master: OwnedFd,
    child: Child,
    /// Everything read so far, with escape sequences and carriage returns removed.
    seen: String,
    /// `seen[..pos]` has been matched by earlier expectations.
    pos: usize,
    raw: Vec<u8>,
}

/// Remove ANSI escape sequences (CSI and two-byte ESC sequences) and carriage returns.
fn clean(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => {
                if chars.next() == Some('[') {
                    for c in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&c) {
                            break;
                        }
                    }
                }
            }
            '\r' | '\x07' => {}
            c => out.push(c),
        }
    }
    out
}

impl Pty {
    fn spawn(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Pty {
        let ws = nix::pty::Winsize {
            ws_row: 40,
            ws_col: 200,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&ws), None).unwrap();
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env("TERM", "xterm")
            .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
            .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
            .stderr(Stdio::from(pty.slave.try_clone().unwrap()));
        for (k, v) in env {
            cmd.env(k, v);
        }
        // SAFETY: only async-signal-safe calls (setsid, ioctl) between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop(cmd);
        drop(pty.slave);
        Pty {
            master: pty.master,
            child,
            seen: String::new(),
            pos: 0,
            raw: Vec::new(),
        }
    }

    /// Read what is available, waiting at most until `until`. False at end of output.
    fn fill(&mut self, until: Instant) -> bool {
        let left = until.saturating_duration_since(Instant::now());
        let ms = left.as_millis().min(1000) as u16;
        let mut fds = [nix::poll::PollFd::new(
            self.master.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        match nix::poll::poll(&mut fds, ms) {
            Ok(0) => true,
            Ok(_) => {
                let mut buf = [0u8; 4096];
                match nix::unistd::read(self.master.as_raw_fd(), &mut buf) {
                    Ok(0) => false,
                    Ok(n) => {
                        self.raw.extend_from_slice(&buf[..n]);
                        self.seen = clean(&self.raw);
                        true
                    }
                    // EIO: the child closed the terminal.
                    Err(_) => false,
                }
            }
            Err(nix::errno::Errno::EINTR) => true,
            Err(e) => panic!("poll: {e}"),
        }
    }

    /// Wait until `needle` appears after what earlier expectations matched; returns the text
    /// between the previous match and the end of this one.
    fn expect(&mut self, needle: &str) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(i) = self.seen[self.pos..].find(needle) {
                let from = self.pos;
                self.pos += i + needle.len();
                return self.seen[from..self.pos].to_string();
            }
            let open = self.fill(end);
            assert!(
                open || self.seen[self.pos..].contains(needle),
                "output ended without {needle:?}; after the last match: {:?}",
                &self.seen[self.pos..]
            );
            assert!(
                Instant::now() < end,
                "no {needle:?} within {DEADLINE:?}; after the last match: {:?}",
                &self.seen[self.pos..]
            );
        }
    }

    fn send(&mut self, text: &str) {
        let mut b = text.as_bytes();
        while !b.is_empty() {
            let n = nix::unistd::write(&self.master, b).unwrap();
            b = &b[n..];
        }
    }

    /// Wait for the child to exit (reading its output meanwhile); its exit code.
    fn wait(mut self) -> (i32, String) {
        let end = Instant::now() + DEADLINE;
        while self.fill(end) {
            assert!(
                Instant::now() < end,
                "the shell did not end: {:?}",
                self.seen
            );
        }
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return (st.code().unwrap_or(-1), std::mem::take(&mut self.seen));
            }
            assert!(Instant::now() < end, "the shell did not exit");
            std::thread::yield_now();
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
