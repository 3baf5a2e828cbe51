//! Two processes sharing one table over shared memory.
//!
//! This program starts a shmkv server inside itself, then runs itself again as a second
//! process that connects as a client (through the server's socket, which hands it a sealed
//! shared-memory object for its session) and writes three pairs. When that process has exited,
//! the first one reads the pairs back through a session of its own and prints the server's
//! statistics. Keys and values are byte strings: here a little text.
//!
//! ```sh
//! cargo run --example two_processes
//! ```

#[cfg(loom)]
fn main() {
    eprintln!("built with --cfg loom: this example needs real shared memory");
}

#[cfg(not(loom))]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("client") => {
            let name = args
                .next()
                .ok_or("usage: two_processes client <server name>")?;
            client_process(&name)
        }
        _ => server_process(),
    }
}

/// The first process: a server, then a client of its own.
#[cfg(not(loom))]
fn server_process() -> Result<(), Box<dyn std::error::Error>> {
    use shmkv::client::{Client, ClientConfig};
    use shmkv::server::{Server, ServerConfig};
    use shmkv::wire::Verb;

    let me = std::process::id();
    // A name of our own, so that this example never meets a server someone else runs.
    let name = format!("two-processes-{me}");
    let server = Server::start(ServerConfig {
        name: name.clone(),
        buckets: 64,
        clients: 2,
        ..ServerConfig::default()
    })?;
    println!(
        "process {me}: server '{name}' started (socket {})",
        server.socket().display()
    );

    // The second process: this very program, with arguments that make it a client.
    let status = std::process::Command::new(std::env::current_exe()?)
        .args(["client", &name])
        .status()?;
    if !status.success() {
        return Err(format!("the client process failed: {status}").into());
    }

    let client = Client::connect(&ClientConfig::new(&name))?;
    for key in 1..=3 {
        match client.read(key.to_string().as_bytes())? {
            Some(value) => println!(
                "process {me}: read {key} -> {}",
                String::from_utf8_lossy(&value)
            ),
            None => return Err(format!("key {key} is missing").into()),
        }
    }
    let stats = client.stats()?;
    println!(
        "process {me}: the server counted {} inserts and {} reads; the table has {} entries",
        stats.ops.get(Verb::Insert),
        stats.ops.get(Verb::Read),
        stats.entries
    );
    drop(client);
    server.shutdown();
    println!("process {me}: server shut down");
    Ok(())
}

/// The second process: attach to the server by name and write, pipelined.
#[cfg(not(loom))]
fn client_process(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    use shmkv::client::{Client, ClientConfig, Outcome};
    use shmkv::wire::Op;

    let me = std::process::id();
    let client = Client::connect(&ClientConfig::new(name))?;
    println!(
        "process {me}: connected to '{name}' as client {}",
        client.slot()
    );
    let ops: Vec<Op> = (1..=3u64)
        .map(|key| Op::Insert {
            key: key.to_string().into_bytes(),
            value: (key * 10).to_string().into_bytes(),
        })
        .collect();
    for (op, ticket) in ops.iter().zip(client.submit_all(&ops)?) {
        let outcome = client.wait(ticket)?;
        if outcome != Outcome::Created {
            return Err(format!("{op:?}: {outcome:?}").into());
        }
        if let Op::Insert { key, value } = op {
            println!(
                "process {me}: inserted {} -> {}",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(value)
            );
        }
    }
    Ok(())
    // Dropping the client ends its session.
}
