//! How a spinning side waits: its deadline, its peer's liveness, and why it stopped.

use super::shm::{FAILED_AT, STOP_AT, Shm};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Each side checks its deadline (and the child its parent) every this many spins.
const CHECK_EVERY: u32 = 4096;

/// Why a side stopped waiting.
#[derive(Debug)]
pub(super) enum Halt {
    /// The parent asked the child to stop (the child's normal end).
    Stop,
    /// Something went wrong.
    Fail(String),
}

impl From<String> for Halt {
    fn from(s: String) -> Halt {
        Halt::Fail(s)
    }
}

impl Halt {
    pub(super) fn into_message(self) -> String {
        match self {
            Halt::Stop => "stopped".into(),
            Halt::Fail(m) => m,
        }
    }
}

/// The other side of a [`Watch`].
#[derive(Debug, Clone, Copy)]
pub(super) enum Peer {
    /// The limit child, from the parent.
    Child(i32),
    /// The parent, from the child.
    Parent(i32),
}

/// What a spinning side checks now and then: its deadline, and the other side.
pub(super) struct Watch<'a> {
    pub(super) shm: &'a Shm,
    pub(super) deadline: Instant,
    /// The other side: the child's pid on the parent's side, the parent's on the child's.
    pub(super) peer: Peer,
    pub(super) what: &'static str,
}

impl Watch<'_> {
    #[cold]
    fn check(&self) -> Result<(), Halt> {
        match self.peer {
            Peer::Child(pid) => {
                if self.shm.word(FAILED_AT).load(Ordering::Acquire) != 0 {
                    return Err(Halt::Fail(format!(
                        "limit: the child failed during {} (its message is above)",
                        self.what
                    )));
                }
                // Whether it has exited, without reaping it (its status is read later).
                use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
                let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
                match waitid(Id::Pid(nix::unistd::Pid::from_raw(pid)), flags) {
                    Ok(WaitStatus::StillAlive) => {}
                    Ok(st) => {
                        return Err(Halt::Fail(format!(
                            "limit: the child ended during {} ({st:?})",
                            self.what
                        )));
                    }
                    Err(e) => return Err(Halt::Fail(format!("limit: waitid: {e}"))),
                }
            }
            Peer::Parent(ppid) => {
                if self.shm.word(STOP_AT).load(Ordering::Acquire) != 0 {
                    return Err(Halt::Stop);
                }
                // SAFETY: getppid has no preconditions.
                if unsafe { libc::getppid() } != ppid {
                    return Err(Halt::Fail("the parent went away".into()));
                }
            }
        }
        if Instant::now() > self.deadline {
            return Err(Halt::Fail(format!(
                "limit: no progress in {} before the deadline (is another process spinning on these cores?)",
                self.what
            )));
        }
        Ok(())
    }

    /// Spin until `ready` says so, checking now and then.
    #[inline(always)]
    pub(super) fn spin_until(
        &self,
        mut ready: impl FnMut() -> Result<bool, Halt>,
    ) -> Result<(), Halt> {
        let mut spins = 0u32;
        loop {
            if ready()? {
                return Ok(());
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins % CHECK_EVERY == 0 {
                self.check()?;
            }
        }
    }
}
