//! `shmkv-client`: runs operations against a running shmkv-server (or, with `--url`, a Redis
//! server or cluster), from its command line, from an interactive shell, or from standard
//! input. Every way runs its operations through `shmkv::engine::Engine`, so one command line
//! prints the same lines on every engine.

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

    use clap::parser::ValueSource;
    use clap::{CommandFactory, FromArgMatches, Parser};
    use shmkv::client::{Client, ClientConfig, ClientError};
    use shmkv::engine::redis::REDIS_TIMEOUT;
    use shmkv::engine::{self, Engine, EngineError, EngineUrl};
    use shmkv::wire::{Op, Outcome};
    use shmkv_cli::{
        Item, Token, argv_token, check_limits, operations_help, parse_ops, render_json,
        render_text, split_line,
    };
    use std::io::{BufRead, IsTerminal, Write};
    use std::process::ExitCode;

    const AFTER_HELP: &str = "\
ID is the client slot asked for (0, 1, ...); give '-' or leave it out to take any free one.

--url picks the engine: shm://NAME is shmkv's own server NAME (the same as --name NAME);
redis://HOST:PORT[/DB], redis+unix:///PATH and redis-cluster://HOST:PORT[,HOST:PORT...]
run the same operations, with the same answers, on a Redis server or cluster. On Redis,
print, threads, stats and quit are refused before anything of their batch is sent (status 2),
an ID other than '-' is a command-line error (client ids are slots of shmkv's own server),
and so is --timeout (the Redis engine waits up to 10 s to connect and for each reply).

Without operations, on a terminal, it opens an interactive shell (prompt, line editing,
history in $SHMKV_HISTORY or ~/.shmkv_history, Tab completion; 'help', 'exit' or Ctrl-D).
Without operations and without a terminal, it reads operations from standard input, one or
more per line ('#' starts a comment); a line that does not parse stops it (status 2).

Answers name the operation, then say what came of it:
  read 1: 2   read 9: not found   insert 1 2: ok, replaced 7   cas k --absent v: ok
  scan 0 10: cursor 17, 3 keys: a b \"c d\"   print 0: (1, 2) (7, 3)   stats: (a block)

--json prints one JSON object per operation on standard output, refused ones included (a key
or value that is not UTF-8 is {\"base64\": \"...\"}):
  {\"op\":\"read\",\"key\":\"1\",\"value\":\"2\",\"status\":\"ok\"}

Examples:
  shmkv-client 0 insert 1 2 insert 2 4
  shmkv-client 1 read 1 read 2
  shmkv-client --name t1 - insert 5 6 read 5
  shmkv-client 0 insert 'a key' '\"\\x00\\xff\"' cas n --absent 0 add n 5
  shmkv-client 0                                  (interactive shell on a terminal)
  printf 'insert 1 2\\nread 1\\n' | shmkv-client 0
  shmkv-client --json 0 read 1 stats
  shmkv-client --url redis://127.0.0.1:6379 insert 1 2 read 1

Exit status: 0 all operations done, 1 the server refused an operation, 2 bad command line
(or a bad line on standard input, a key or value longer than the server takes, or an
operation the engine does not have), 3 could not connect or lost the server (on Redis also:
an operation answered with an error reply), 4 the terminal or standard input could not be
read.";

    const SHELL_HELP: &str = "\
Shell commands:
  help                    this text
  exit                    leave (so do Ctrl-D and 'quit', which also stops the server)
  Tab completes operation names; Up and Down walk the history; Ctrl-C clears the line.
Several operations on one line are sent together, as on the command line.";

    /// Run operations against a shmkv server (or Redis, with --url).
    #[derive(Parser, Debug)]
    #[command(
        name = "shmkv-client",
        version,
        after_help = format!("{}\n\n{AFTER_HELP}", operations_help())
    )]
    struct Args {
        #[arg(
            long,
            default_value = "shmkv",
            help = "Server name: connects to its socket, <dir>/<name>.sock, dir $XDG_RUNTIME_DIR/shmkv or /tmp/shmkv-<uid>"
        )]
        name: String,
        /// Connect to this socket path instead (the server's --socket).
        #[arg(long, value_name = "PATH")]
        socket: Option<std::path::PathBuf>,
        /// The engine, by URL: shm://NAME (as --name NAME), redis://HOST:PORT[/DB],
        /// redis+unix:///PATH or redis-cluster://HOST:PORT[,HOST:PORT...].
        #[arg(long, value_name = "URL", conflicts_with_all = ["name", "socket"])]
        url: Option<String>,
        /// Print one JSON object per operation instead of text lines.
        #[arg(long)]
        json: bool,
        /// Give up (status 3) on a server that answers nothing for this many seconds.
        #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = parse_timeout)]
        timeout: std::time::Duration,
        #[arg(
            help = "[ID] then operations",
            value_name = "[ID] OPS",
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        words: Vec<String>,
    }

    /// Exit statuses.
    const REFUSED: u8 = 1;
    const USAGE: u8 = 2;
    const CONNECTION: u8 = 3;
    const INPUT: u8 = 4;

    /// Take a leading client id (`-`, or a number) off `words`: the slot (None: first free) and
    /// the remaining words.
    fn split_id<'a>(words: &'a [&'a str]) -> Result<(Option<u32>, &'a [&'a str]), String> {
        match words.first() {
            Some(&"-") => Ok((None, &words[1..])),
            Some(w) if w.starts_with(|c: char| c.is_ascii_digit() || c == '+') => {
                let slot = w
                    .parse::<u32>()
                    .map_err(|_| format!("client id '{w}' is not a valid id (0..={})", u32::MAX))?;
                Ok((Some(slot), &words[1..]))
            }
            Some(w) if w.starts_with('-') => Err(format!(
                "client id '{w}' is not a valid id (use 0, 1, ... or '-')"
            )),
            _ => Ok((None, words)),
        }
    }

    /// How a batch ended, short of losing the connection.
    #[derive(Debug, Default)]
    struct Ran {
        refused: bool,
        quit: bool,
    }

    /// Why a batch stopped.
    #[derive(Debug)]
    enum Stop {
        /// A key or value is longer than the engine takes (nothing was sent): this message,
        /// a usage error (status 2).
        Usage(String),
        /// An operation the engine does not have (nothing was sent): this message, status 2.
        NotHere(String),
        /// The connection failed (the message is printed): status 3.
        Connection,
    }

    /// What the client connects to.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Target {
        /// shmkv's own server: its name, and the slot asked for (None: the first free).
        Shm { name: String, slot: Option<u32> },
        /// Another engine (Redis), by its URL.
        Url(String),
    }

    /// A connected engine, and how the shell greets and prompts on it.
    struct Session {
        engine: Box<dyn Engine>,
        greeting: String,
        prompt: String,
    }

    /// Print one answer (standard output, or a refusal on standard error) and note in `ran`
    /// what it means for the exit status.
    fn print_answer(
        out: &mut impl Write,
        item: &Item,
        outcome: &Outcome,
        json: bool,
        ran: &mut Ran,
    ) {
        if json {
            let (v, refused) = render_json(item, outcome);
            ran.refused |= refused;
            let _ = writeln!(out, "{v}");
        } else {
            match render_text(item, outcome) {
                Ok(text) => {
                    let _ = writeln!(out, "{text}");
                }
                Err(line) => {
                    let _ = out.flush();
                    eprintln!("shmkv-client: {line}");
                    ran.refused = true;
                }
            }
        }
        if item.op == Op::Quit && *outcome == Outcome::Done {
            ran.quit = true;
        }
    }

    /// Send `items` as one pipelined batch and print each answer, in order, as the engine
    /// hands it over. Nothing is sent if a key or value is longer than the engine's limits or
    /// an operation is one the engine does not have.
    fn run_batch(engine: &dyn Engine, items: &[Item], json: bool) -> Result<Ran, Stop> {
        let limits = engine.limits();
        for item in items {
            check_limits(item, &limits).map_err(Stop::Usage)?;
        }
        let ops: Vec<Op> = items.iter().map(|i| i.op.clone()).collect();
        let mut ran = Ran::default();
        let mut lost = false;
        let mut out = std::io::stdout().lock();
        let mut labels = items.iter();
        let sent = engine.execute_each(&ops, &mut |answer| {
            let Some(item) = labels.next() else { return };
            match answer {
                _ if lost => {}
                Ok(outcome) => print_answer(&mut out, item, &outcome, json, &mut ran),
                Err(e) => {
                    let _ = out.flush();
                    eprintln!("shmkv-client: {}: {}", item.label, one_line(&e.to_string()));
                    lost = true;
                }
            }
        });
        let _ = out.flush();
        match sent {
            // Checked above; the engine checks too (an empty key as well).
            Err(e @ EngineError::TooLarge(_)) => Err(Stop::Usage(e.to_string())),
            Err(e @ EngineError::Unsupported { .. }) => Err(Stop::NotHere(e.to_string())),
            Err(e) => {
                eprintln!("shmkv-client: {}", one_line(&e.to_string()));
                Err(Stop::Connection)
            }
            Ok(()) if lost => Err(Stop::Connection),
            Ok(()) => Ok(ran),
        }
    }

    /// `text` on one line (an error from the `redis` crate may span several).
    fn one_line(text: &str) -> String {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// `--timeout`, set once in `main` (a static keeps it out of the signatures of the three
    /// ways of running operations, which all connect here).
    static TIMEOUT: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();
    static SOCKET: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

    fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
        match s.parse::<f64>() {
            Ok(secs) if secs > 0.0 && secs <= 86400.0 => {
                Ok(std::time::Duration::from_secs_f64(secs))
            }
            Ok(_) => Err("must be more than 0 and at most 86400 seconds".into()),
            Err(_) => Err("not a number of seconds".into()),
        }
    }

    /// What `--url` (or `--name`) and the client id name; a usage error for what has no
    /// meaning on the engine named (an id or `--timeout` on Redis).
    fn target(args: &Args, timeout_given: bool, slot: Option<u32>) -> Result<Target, String> {
        let Some(url) = &args.url else {
            let name = args.name.clone();
            return Ok(Target::Shm { name, slot });
        };
        let parsed = EngineUrl::parse(url).map_err(|e| one_line(&e.to_string()))?;
        let kind = parsed.kind();
        match parsed {
            EngineUrl::Shm { name } => Ok(Target::Shm { name, slot }),
            _ if slot.is_some() => Err(format!(
                "client ids are slots of shmkv's own server: give none (or '-') with a {kind} URL"
            )),
            _ if timeout_given => Err(format!(
                "--timeout is for shmkv's own server; the {kind} engine waits up to {} s to connect and for each reply",
                REDIS_TIMEOUT.as_secs()
            )),
            _ => Ok(Target::Url(url.clone())),
        }
    }

    fn connect(target: &Target) -> Result<Session, ExitCode> {
        match target {
            Target::Shm { name, slot } => connect_shm(name, *slot),
            Target::Url(url) => connect_url(url),
        }
    }

    fn connect_shm(name: &str, slot: Option<u32>) -> Result<Session, ExitCode> {
        let mut config = ClientConfig::new(name);
        config.slot = slot;
        if let Some(t) = TIMEOUT.get() {
            config.timeout = *t;
            config.attach_timeout = *t;
        }
        config.socket = SOCKET.get().cloned();
        let client = Client::connect(&config).map_err(|e| {
            eprintln!("shmkv-client: {e}");
            ExitCode::from(match e {
                ClientError::InvalidName(_) => USAGE,
                _ => CONNECTION,
            })
        })?;
        let info = client.info();
        Ok(Session {
            greeting: format!(
                "connected to server '{name}' as client {} ({} slots, {} buckets); type help, or exit or Ctrl-D to leave",
                client.slot(),
                info.clients,
                info.buckets
            ),
            prompt: format!("shmkv[{name}:{}]> ", client.slot()),
            engine: Box::new(client),
        })
    }

    fn connect_url(url: &str) -> Result<Session, ExitCode> {
        let engine = engine::connect(url).map_err(|e| {
            eprintln!(
                "shmkv-client: cannot connect to {url}: {}",
                one_line(&e.to_string())
            );
            ExitCode::from(match e {
                EngineError::BadUrl { .. } | EngineError::NoRedis(_) => USAGE,
                _ => CONNECTION,
            })
        })?;
        Ok(Session {
            greeting: format!(
                "connected to {url} (the {} engine); type help, or exit or Ctrl-D to leave",
                engine.kind()
            ),
            prompt: format!("shmkv[{url}]> "),
            engine,
        })
    }

    fn usage(msg: &str) -> ExitCode {
        eprintln!("shmkv-client: {msg} (see shmkv-client --help)");
        ExitCode::from(USAGE)
    }

    /// The command line, and whether `--timeout` was given on it (not defaulted).
    fn parse_args() -> Result<(Args, bool), clap::Error> {
        let matches = Args::command().try_get_matches()?;
        let given = matches.value_source("timeout") == Some(ValueSource::CommandLine);
        Ok((Args::from_arg_matches(&matches)?, given))
    }

    pub fn main() -> ExitCode {
        let (args, timeout_given) = match parse_args() {
            Ok(a) => a,
            Err(e) => {
                return shmkv_cli::clap_outcome(e).unwrap_or_else(|msg| usage(&msg));
            }
        };
        let _ = TIMEOUT.set(args.timeout);
        if let Some(p) = &args.socket {
            let _ = SOCKET.set(p.clone());
        }
        let words: Vec<&str> = args.words.iter().map(String::as_str).collect();
        let (slot, rest) = match split_id(&words) {
            Ok(x) => x,
            Err(msg) => return usage(&msg),
        };
        let target = match target(&args, timeout_given, slot) {
            Ok(t) => t,
            Err(msg) => return usage(&msg),
        };
        let items = match parse_words(rest) {
            Ok(x) => x,
            Err(msg) => return usage(&msg),
        };
        if !items.is_empty() {
            return from_command_line(&target, &items, args.json);
        }
        if std::io::stdin().is_terminal() {
            shell::run(&target, args.json)
        } else {
            from_stdin(&target, args.json)
        }
    }

    /// The operations of the command line, as one batch.
    fn from_command_line(target: &Target, items: &[Item], json: bool) -> ExitCode {
        let session = match connect(target) {
            Ok(s) => s,
            Err(code) => return code,
        };
        match run_batch(session.engine.as_ref(), items, json) {
            Ok(ran) if ran.refused => ExitCode::from(REFUSED),
            Ok(_) => ExitCode::SUCCESS,
            Err(Stop::Usage(msg)) => usage(&msg),
            Err(Stop::NotHere(msg)) => {
                eprintln!("shmkv-client: {msg}");
                ExitCode::from(USAGE)
            }
            Err(Stop::Connection) => ExitCode::from(CONNECTION),
        }
    }

    /// What one line of the shell or of standard input asks for.
    enum Line {
        Nothing,
        Help,
        Exit,
        Ops(Vec<Item>),
    }

    /// The operations of command-line words (after the id): each word through
    /// [`argv_token`], so that a quoted argument reads as on a line.
    fn parse_words(words: &[&str]) -> Result<Vec<Item>, String> {
        let tokens = words
            .iter()
            .map(|w| argv_token(w))
            .collect::<Result<Vec<Token>, String>>()?;
        parse_ops(&tokens)
    }

    /// One line of the shell or of standard input.
    fn parse_line(line: &str) -> Result<Line, String> {
        let tokens = split_line(line)?;
        Ok(match tokens.as_slice() {
            [] => Line::Nothing,
            [t] if *t == Token::bare("help") => Line::Help,
            [t] if *t == Token::bare("exit") => Line::Exit,
            _ => Line::Ops(parse_ops(&tokens)?),
        })
    }

    /// Operations from standard input, one or more per line; a line is one pipelined batch.
    /// Connects at the first line with operations.
    fn from_stdin(target: &Target, json: bool) -> ExitCode {
        let mut session: Option<Session> = None;
        let mut refused = false;
        for (n, line) in std::io::stdin().lock().lines().enumerate() {
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("shmkv-client: standard input: {e}");
                    return ExitCode::from(INPUT);
                }
            };
            let items = match parse_line(&line) {
                Ok(Line::Nothing) => continue,
                Ok(Line::Help) => {
                    println!("{}", operations_help());
                    continue;
                }
                Ok(Line::Exit) => break,
                Ok(Line::Ops(items)) => items,
                Err(msg) => {
                    eprintln!(
                        "shmkv-client: line {}: {msg}; stopped there (see shmkv-client --help)",
                        n + 1
                    );
                    return ExitCode::from(USAGE);
                }
            };
            if session.is_none() {
                match connect(target) {
                    Ok(s) => session = Some(s),
                    Err(code) => return code,
                }
            }
            let s = session.as_ref().expect("connected above");
            match run_batch(s.engine.as_ref(), &items, json) {
                Ok(ran) => {
                    refused |= ran.refused;
                    if ran.quit {
                        break;
                    }
                }
                Err(Stop::Usage(msg) | Stop::NotHere(msg)) => {
                    eprintln!(
                        "shmkv-client: line {}: {msg}; stopped there (see shmkv-client --help)",
                        n + 1
                    );
                    return ExitCode::from(USAGE);
                }
                Err(Stop::Connection) => return ExitCode::from(CONNECTION),
            }
        }
        if session.is_none() {
            return usage(
                "no operations given on the command line or standard input (e.g. shmkv-client 0 insert 1 2 read 1)",
            );
        }
        if refused {
            ExitCode::from(REFUSED)
        } else {
            ExitCode::SUCCESS
        }
    }

    mod shell {
        //! The interactive shell (rustyline).

        use super::*;
        use rustyline::completion::{Completer, Pair};
        use rustyline::error::ReadlineError;
        use rustyline::highlight::Highlighter;
        use rustyline::hint::Hinter;
        use rustyline::history::DefaultHistory;
        use rustyline::validate::Validator;
        use rustyline::{CompletionType, Config, Context, Editor, Helper};
        use shmkv::wire::{VERBS, Verb};

        /// Completes the names of the operations the engine has, from the verb table (and
        /// `start`/`stop` after `threads`, on shmkv's own server); `help` and `exit` at the
        /// start of a line.
        struct ShellHelper {
            /// The engine's operations ([`Engine::supports`]).
            verbs: Vec<Verb>,
        }

        impl ShellHelper {
            fn new(engine: &dyn Engine) -> ShellHelper {
                let verbs = VERBS.iter().map(|v| v.verb);
                ShellHelper {
                    verbs: verbs.filter(|&v| engine.supports(v)).collect(),
                }
            }
        }

        /// The words that may come next after `before` (the complete words of the line), of
        /// the operations `verbs`: nothing where an argument is due, in a comment, or where
        /// `before` does not split (an open quote).
        fn candidates(before: &str, verbs: &[Verb]) -> Vec<&'static str> {
            let Ok(tokens) = split_line(before) else {
                return Vec::new();
            };
            // In a comment, a word typed now would be no word: nothing to offer.
            if split_line(&format!("{before}x")).map(|t| t.len()) == Ok(tokens.len()) {
                return Vec::new();
            }
            let mut words = shmkv_cli::next_words(&tokens, |v| verbs.contains(&v));
            if tokens.is_empty() {
                words.extend(["help", "exit"]);
            }
            words
        }

        impl Completer for ShellHelper {
            type Candidate = Pair;

            fn complete(
                &self,
                line: &str,
                pos: usize,
                _ctx: &Context<'_>,
            ) -> rustyline::Result<(usize, Vec<Pair>)> {
                let head = &line[..pos];
                let start = head.rfind(char::is_whitespace).map_or(0, |i| {
                    i + head[i..].chars().next().map_or(1, char::len_utf8)
                });
                let partial = &head[start..];
                let found = candidates(&head[..start], &self.verbs)
                    .into_iter()
                    .filter(|c| c.starts_with(partial))
                    .map(|c| Pair {
                        display: c.to_string(),
                        replacement: format!("{c} "),
                    })
                    .collect();
                Ok((start, found))
            }
        }

        impl Hinter for ShellHelper {
            type Hint = String;
        }
        impl Highlighter for ShellHelper {}
        impl Validator for ShellHelper {}
        impl Helper for ShellHelper {}

        fn history_file() -> Option<std::path::PathBuf> {
            match std::env::var_os("SHMKV_HISTORY") {
                Some(p) if p.is_empty() => None,
                Some(p) => Some(p.into()),
                None => std::env::var_os("HOME")
                    .filter(|h| !h.is_empty())
                    .map(|h| std::path::Path::new(&h).join(".shmkv_history")),
            }
        }

        pub(super) fn run(target: &Target, json: bool) -> ExitCode {
            let session = match connect(target) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let config = Config::builder()
                .completion_type(CompletionType::List)
                .auto_add_history(false)
                .max_history_size(1000)
                .and_then(|b| b.history_ignore_dups(true))
                .map(|b| b.build())
                .unwrap_or_default();
            let mut rl: Editor<ShellHelper, DefaultHistory> = match Editor::with_config(config) {
                Ok(rl) => rl,
                Err(e) => {
                    eprintln!("shmkv-client: cannot use the terminal: {e}");
                    return ExitCode::from(INPUT);
                }
            };
            rl.set_helper(Some(ShellHelper::new(session.engine.as_ref())));
            let history = history_file();
            if let Some(h) = &history {
                let _ = rl.load_history(h);
            }
            println!("{}", session.greeting);
            let prompt = &session.prompt;
            let code = loop {
                let line = match rl.readline(prompt) {
                    Ok(l) => l,
                    Err(ReadlineError::Interrupted) => continue,
                    Err(ReadlineError::Eof) => break ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("shmkv-client: terminal: {e}");
                        break ExitCode::from(INPUT);
                    }
                };
                if !line.trim().is_empty() {
                    let _ = rl.add_history_entry(line.as_str());
                }
                match parse_line(&line) {
                    Ok(Line::Nothing) => {}
                    Ok(Line::Help) => println!("{}\n\n{SHELL_HELP}", operations_help()),
                    Ok(Line::Exit) => break ExitCode::SUCCESS,
                    Ok(Line::Ops(items)) => {
                        match run_batch(session.engine.as_ref(), &items, json) {
                            Ok(ran) if ran.quit => break ExitCode::SUCCESS,
                            Ok(_) => {}
                            Err(Stop::Usage(msg)) => eprintln!("shmkv-client: {msg} (type help)"),
                            Err(Stop::NotHere(msg)) => eprintln!("shmkv-client: {msg}"),
                            Err(Stop::Connection) => break ExitCode::from(CONNECTION),
                        }
                    }
                    Err(msg) => eprintln!("shmkv-client: {msg} (type help)"),
                }
            };
            if let Some(h) = &history {
                let _ = rl.save_history(h);
            }
            code
        }

        #[cfg(test)]
        mod tests {
            use super::{VERBS, Verb};

            /// Every operation: shmkv's own server (the `shm` engine).
            fn all() -> Vec<Verb> {
                VERBS.iter().map(|v| v.verb).collect()
            }

            fn candidates(before: &str) -> Vec<&'static str> {
                super::candidates(before, &all())
            }

            #[test]
            fn completion_follows_the_verb_table() {
                assert!(candidates("").contains(&"help"));
                assert!(candidates("  ").contains(&"exit"));
                assert!(!candidates("read 1 ").contains(&"help"));
                assert!(candidates("read 1 ").contains(&"insert"));
                assert!(candidates("read 1 ").contains(&"insert-new"));
                assert!(candidates("insert 1 ").is_empty());
                assert_eq!(candidates("threads "), ["start", "stop"]);
                assert!(candidates("threads start ").is_empty());
                assert!(candidates("threads start 2 ").contains(&"stats"));
                assert!(candidates("threads stop ").contains(&"read"));
                assert!(candidates("scan 0 ").contains(&"read"));
                // Inside an open quote, or after a comment: nothing.
                assert!(candidates("insert \"a ").is_empty());
                assert!(candidates("# note ").is_empty());
                assert!(candidates("read 1 # note ").is_empty());
            }

            /// Per engine kind: on shmkv's own server (`shm`) every operation is offered; on
            /// the Redis engines (`redis`, `redis-cluster`: the same operations) the same words
            /// but print, threads, stats and quit, and no `start`/`stop` after `threads`.
            #[test]
            fn completion_offers_only_the_engines_operations() {
                let redis: Vec<Verb> = all()
                    .into_iter()
                    .filter(|&v| shmkv::engine::redis::supported(v))
                    .collect();
                let shmkv_only = ["print", "threads", "stats", "quit"];
                for before in ["", "read 1 ", "threads start 2 ", "scan 0 "] {
                    let on_shm = candidates(before);
                    assert!(shmkv_only.iter().all(|w| on_shm.contains(w)), "{on_shm:?}");
                    let on_redis = super::candidates(before, &redis);
                    let want = on_shm.into_iter().filter(|w| !shmkv_only.contains(w));
                    let want: Vec<_> = want.collect();
                    assert_eq!(on_redis, want, "after {before:?}");
                }
                let after_threads = super::candidates("threads ", &redis);
                assert!(!after_threads.contains(&"start"), "{after_threads:?}");
                assert!(!after_threads.contains(&"stop"), "{after_threads:?}");
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn one_parser_for_command_lines_and_lines() {
            let (slot, rest) = split_id(&["3", "insert", "1", "2"]).unwrap();
            assert_eq!(slot, Some(3));
            let items = parse_words(rest).unwrap();
            assert_eq!(
                items[0].op,
                Op::Insert {
                    key: b"1".to_vec(),
                    value: b"2".to_vec()
                }
            );
            let Line::Ops(from_line) = parse_line("  insert 1 2   # comment").unwrap() else {
                panic!("not ops");
            };
            assert_eq!(from_line, items);
            assert!(matches!(parse_line("# only a comment"), Ok(Line::Nothing)));
            assert!(matches!(parse_line(" help "), Ok(Line::Help)));
            assert!(matches!(parse_line("exit"), Ok(Line::Exit)));
            assert!(parse_line("help me").is_err());
            assert!(parse_line("\"help\"").is_err());
            assert!(parse_line("read \"1").is_err());
            assert_eq!(split_id(&["-"]).unwrap(), (None, &[][..]));
            assert!(split_id(&["-1"]).is_err());
        }

        #[test]
        fn quoted_words_read_the_same_on_the_command_line_and_on_a_line() {
            // What the shell hands over for: insert 'a b' '"\x00\xff"' cas k --absent v
            let argv = [
                "insert",
                "a b",
                "\"\\x00\\xff\"",
                "cas",
                "k",
                "--absent",
                "v",
            ];
            let from_argv = parse_words(&argv).unwrap();
            let Line::Ops(from_line) =
                parse_line("insert \"a b\" \"\\x00\\xff\" cas k --absent v").unwrap()
            else {
                panic!("not ops");
            };
            assert_eq!(from_argv, from_line);
            assert_eq!(
                from_argv[0].op,
                Op::Insert {
                    key: b"a b".to_vec(),
                    value: vec![0, 0xff]
                }
            );
            assert_eq!(from_argv[0].label, "insert \"a b\" \"\\x00\\xff\"");
            assert!(parse_words(&["read", "\"abc"]).is_err());
        }
    }
}
