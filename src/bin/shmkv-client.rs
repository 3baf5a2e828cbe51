//! `shmkv-client`: runs operations from its command line against a running shmkv-server.

// The binaries need real shared memory; under `--cfg loom` (model checking) they are stubs so
// that `RUSTFLAGS="--cfg loom" cargo test` still builds the whole package.
#[cfg(loom)]
fn main() {
    eprintln!("built with --cfg loom: the binaries are disabled in model-checking builds");
    std::process::exit(2);
}

#[cfg(not(loom))]
fn main() -> std::process::ExitCode {
    app::main()
}

#[cfg(not(loom))]
mod app {

    use clap::Parser;
    use shmkv::client::{Client, ClientConfig, ClientError, Outcome};
    use shmkv::protocol::Op;
    use std::io::Write;
    use std::process::ExitCode;

    const AFTER_HELP: &str = "\
Operations (any number, run in order, pipelined):
  insert <key> <value>    insert or replace            -> insert 1 2: ok
  read <key>              read                         -> read 1: 2   |  read 9: not found
  delete <key>            delete                       -> delete 1: ok  |  delete 1: not found
  print <bucket>          list a bucket's pairs        -> print 0: (1, 2) (7, 3)  |  print 0: empty
  threads start <n>       n more server worker threads -> threads start 2: ok, 3 threads
  threads stop            one fewer (never the last)   -> threads stop: ok, 2 threads
  quit                    shut the server down         -> quit: ok

Keys and values are unsigned 64-bit integers (0..=18446744073709551615).
ID is the client slot (0, 1, ...); give '-' or leave it out to take the first free one.

Examples:
  shmkv-client 0 insert 1 2 insert 2 4
  shmkv-client 1 read 1 read 2
  shmkv-client --name t1 - insert 5 6 read 5

Exit status: 0 all operations done, 1 the server refused an operation, 2 bad command line,
3 could not connect or lost the server.";

    /// Run operations against a shmkv server.
    #[derive(Parser, Debug)]
    #[command(name = "shmkv-client", version, after_help = AFTER_HELP)]
    struct Args {
        /// Server name.
        #[arg(long, default_value = "shmkv")]
        name: String,
        /// [ID] then operations.
        #[arg(
            value_name = "[ID] OPS",
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        words: Vec<String>,
    }

    fn number<T: std::str::FromStr<Err = std::num::ParseIntError>>(
        what: &str,
        op: &str,
        word: Option<&String>,
    ) -> Result<T, String> {
        let Some(w) = word else {
            return Err(format!("'{op}' needs a {what}"));
        };
        w.parse::<T>().map_err(|e| {
            use std::num::IntErrorKind::*;
            match e.kind() {
                PosOverflow | NegOverflow => format!(
                    "{what} '{w}' of '{op}' is out of range (0..={})",
                    max_of::<T>()
                ),
                _ => format!("{what} '{w}' of '{op}' is not a non-negative integer"),
            }
        })
    }

    fn max_of<T>() -> u64 {
        match std::mem::size_of::<T>() {
            4 => u64::from(u32::MAX),
            _ => u64::MAX,
        }
    }

    /// Parse `[ID] ops...` into the slot (None: first free) and the operations with their labels.
    /// Operations with the label printed before their result.
    type Labelled = Vec<(String, Op)>;

    fn parse(words: &[String]) -> Result<(Option<u32>, Labelled), String> {
        let mut it = words.iter().peekable();
        let mut slot = None;
        if let Some(first) = it.peek() {
            if first.as_str() == "-" {
                it.next();
            } else if first
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit() || c == '+')
            {
                let w = it.next().unwrap();
                slot = Some(w.parse::<u32>().map_err(|_| {
                    format!("client id '{w}' is not a valid id (0..={})", u32::MAX)
                })?);
            } else if first.starts_with('-') {
                return Err(format!(
                    "client id '{first}' is not a valid id (use 0, 1, ... or '-')"
                ));
            }
        }
        let mut ops = Vec::new();
        while let Some(word) = it.next() {
            let (label, op) = match word.as_str() {
                "insert" => {
                    let key = number::<u64>("key", "insert", it.next())?;
                    let value = number::<u64>("value", "insert", it.next())?;
                    (format!("insert {key} {value}"), Op::Insert { key, value })
                }
                "read" => {
                    let key = number::<u64>("key", "read", it.next())?;
                    (format!("read {key}"), Op::Read { key })
                }
                "delete" => {
                    let key = number::<u64>("key", "delete", it.next())?;
                    (format!("delete {key}"), Op::Delete { key })
                }
                "print" => {
                    let bucket = number::<u64>("bucket", "print", it.next())?;
                    (format!("print {bucket}"), Op::Print { bucket })
                }
                "threads" => match it.next().map(String::as_str) {
                    Some("start") => {
                        let n = number::<u32>("count", "threads start", it.next())?;
                        if n == 0 {
                            return Err("'threads start' needs a count of at least 1".into());
                        }
                        (format!("threads start {n}"), Op::ThStart { n })
                    }
                    Some("stop") => ("threads stop".to_string(), Op::ThStop),
                    Some(other) => {
                        return Err(format!(
                            "unknown 'threads {other}': use 'threads start <n>' or 'threads stop'"
                        ));
                    }
                    None => return Err("'threads' needs 'start <n>' or 'stop'".into()),
                },
                "quit" => ("quit".to_string(), Op::Quit),
                other => {
                    return Err(format!(
                        "unknown operation '{other}' (operations: insert, read, delete, print, threads start, threads stop, quit)"
                    ));
                }
            };
            ops.push((label, op));
        }
        if ops.is_empty() {
            return Err("no operations given (e.g. shmkv-client 0 insert 1 2 read 1)".into());
        }
        Ok((slot, ops))
    }

    fn render(label: &str, outcome: &Outcome) -> Result<String, String> {
        Ok(match outcome {
            Outcome::Done | Outcome::Replaced(_) => format!("{label}: ok"),
            Outcome::Value(v) if label.starts_with("read") => format!("{label}: {v}"),
            Outcome::Value(_) => format!("{label}: ok"),
            Outcome::NotFound => format!("{label}: not found"),
            Outcome::Entries(e) if e.is_empty() => format!("{label}: empty"),
            Outcome::Entries(e) => {
                let mut e = e.clone();
                e.sort_unstable();
                let pairs: Vec<String> = e.iter().map(|(k, v)| format!("({k}, {v})")).collect();
                format!("{label}: {}", pairs.join(" "))
            }
            Outcome::Threads(n) => {
                format!("{label}: ok, {n} thread{}", if *n == 1 { "" } else { "s" })
            }
            Outcome::Refused(e) => return Err(format!("{label}: error: {e}")),
        })
    }

    pub fn main() -> ExitCode {
        let args = match Args::try_parse() {
            Ok(a) => a,
            Err(e) => {
                use clap::error::ErrorKind;
                if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                    let _ = e.print();
                    return ExitCode::SUCCESS;
                }
                let text = e.to_string();
                let first = text.lines().next().unwrap_or("bad command line");
                let first = first.strip_prefix("error: ").unwrap_or(first);
                eprintln!("shmkv-client: {first} (see shmkv-client --help)");
                return ExitCode::from(2);
            }
        };
        let (slot, ops) = match parse(&args.words) {
            Ok(x) => x,
            Err(msg) => {
                eprintln!("shmkv-client: {msg} (see shmkv-client --help)");
                return ExitCode::from(2);
            }
        };
        let mut config = ClientConfig::new(&args.name);
        config.slot = slot;
        let client = match Client::connect(&config) {
            Ok(c) => c,
            Err(e @ ClientError::InvalidName(_)) => {
                eprintln!("shmkv-client: {e}");
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("shmkv-client: {e}");
                return ExitCode::from(3);
            }
        };
        let only: Vec<Op> = ops.iter().map(|(_, op)| *op).collect();
        let tickets = match client.submit_all(&only) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("shmkv-client: {e}");
                return ExitCode::from(3);
            }
        };
        let mut status = ExitCode::SUCCESS;
        let mut out = std::io::stdout().lock();
        for ((label, _), ticket) in ops.iter().zip(tickets) {
            match client.wait(ticket) {
                Ok(outcome) => match render(label, &outcome) {
                    Ok(line) => {
                        let _ = writeln!(out, "{line}");
                    }
                    Err(line) => {
                        let _ = out.flush();
                        eprintln!("shmkv-client: {line}");
                        status = ExitCode::from(1);
                    }
                },
                Err(e) => {
                    let _ = out.flush();
                    eprintln!("shmkv-client: {label}: {e}");
                    return ExitCode::from(3);
                }
            }
        }
        let _ = out.flush();
        status
    }
}
