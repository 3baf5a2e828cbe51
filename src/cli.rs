//! Command-line helpers shared by the binaries (`shmkv-server`, `shmkv-client`,
//! `shmkv-bench`): how a clap error becomes help output or one line on stderr.

use std::process::ExitCode;

/// Turn a clap parse error into what the binaries do with it: `--help` and `--version` are
/// printed and end the program successfully (`Ok`); any other error becomes its first line,
/// without clap's `error: ` prefix (`Err`), for the caller to print as its one-line usage error.
pub fn clap_outcome(e: clap::Error) -> Result<ExitCode, String> {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return Ok(ExitCode::SUCCESS);
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("bad command line");
    Err(first.strip_prefix("error: ").unwrap_or(first).to_string())
}
