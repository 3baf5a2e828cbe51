//! A pseudo-terminal driver for the interactive shell: the child gets the slave side as its
//! controlling terminal and its stdin, stdout and stderr; the test reads the master side with
//! deadlines (poll), never sleeps.

use super::DEADLINE;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

pub struct Pty {
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
    pub fn spawn(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Pty {
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
    pub fn expect(&mut self, needle: &str) -> String {
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

    pub fn send(&mut self, text: &str) {
        let mut b = text.as_bytes();
        while !b.is_empty() {
            let n = nix::unistd::write(&self.master, b).unwrap();
            b = &b[n..];
        }
    }

    /// Wait for the child to exit (reading its output meanwhile); its exit code.
    pub fn wait(mut self) -> (i32, String) {
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
