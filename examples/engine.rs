//! The same code on shmkv's shared memory or on Redis: `cargo run --example engine -- [URL]`.
//!
//! Without a URL it starts a shmkv server inside this process and connects to it as
//! `shm://NAME`; with `redis://HOST:PORT` (and the `redis` feature:
//! `cargo run --features redis --example engine -- redis://127.0.0.1:6379`) it runs the same
//! operations on that Redis server. It uses the keys `fruit` and `/index` and removes them.

#![cfg_attr(loom, allow(unused))]

#[cfg(loom)]
fn main() {} // the engines are not built under loom

#[cfg(not(loom))]
mod real {
    use shmkv::wire::{Op, Outcome};
    use shmkv::{Engine, EngineError, Server, ServerConfig};

    /// Counts one visit of `page`.
    fn count_visit(db: &dyn Engine, page: &[u8]) -> Result<i64, EngineError> {
        db.add(page, 1)
    }

    /// The operations, on whichever engine `db` is.
    fn run(db: &dyn Engine) -> Result<(), EngineError> {
        db.insert(b"fruit", b"apple")?;
        assert_eq!(db.read(b"fruit")?, Some(b"apple".to_vec()));
        let visits = count_visit(db, b"/index")?;
        // A pipelined batch: sent at once, answered in order.
        let answers = db.execute_all(&[
            Op::InsertNew {
                key: b"fruit".to_vec(),
                value: b"fig".to_vec(),
            },
            Op::Cas {
                key: b"fruit".to_vec(),
                expected: Some(b"apple".to_vec()),
                new: b"pear".to_vec(),
            },
            Op::Read {
                key: b"fruit".to_vec(),
            },
        ])?;
        assert_eq!(
            answers[0].as_ref().ok(),
            Some(&Outcome::Exists(b"apple".to_vec()))
        );
        assert_eq!(answers[1].as_ref().ok(), Some(&Outcome::Swapped));
        assert_eq!(
            answers[2].as_ref().ok(),
            Some(&Outcome::Value(b"pear".to_vec()))
        );
        println!(
            "{}: /index visited {visits} time(s); fruit is pear",
            db.kind()
        );
        db.delete(b"fruit")?;
        db.delete(b"/index")?;
        Ok(())
    }

    pub fn main() -> Result<(), Box<dyn std::error::Error>> {
        match std::env::args().nth(1) {
            Some(url) => run(&*shmkv::connect(&url)?)?,
            None => {
                let name = format!("engine-example-{}", std::process::id());
                let server = Server::start(ServerConfig {
                    name: name.clone(),
                    ..ServerConfig::default()
                })?;
                run(&*shmkv::connect(&format!("shm://{name}"))?)?;
                server.shutdown();
            }
        }
        Ok(())
    }
}

#[cfg(not(loom))]
fn main() {
    if let Err(e) = real::main() {
        eprintln!("engine: {e}");
        std::process::exit(1);
    }
}
