//! `tokengate completions SHELL` and `tokengate man`: shell completion scripts and manual
//! pages generated from the command line's own definition, so they never drift from it. Both
//! work without a config file.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory as _;
use clap_complete::Shell;

use super::Cli;

/// Prints the completion script for `shell`.
pub(super) fn completions(shell: Shell) -> ExitCode {
    let mut command = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut command, "tokengate", &mut out);
    write_out(&out)
}

/// Prints the manual page `tokengate(1)`, or writes it and one page per subcommand
/// (`tokengate-token-create.1`, …) into `dir`.
pub(super) fn man(dir: Option<&Path>) -> ExitCode {
    let command = Cli::command();
    if let Some(dir) = dir {
        return match std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(command, dir))
        {
            Ok(()) => {
                println!("wrote the manual pages to {}", dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!(
                    "tokengate: writing the manual pages to {}: {e}",
                    dir.display()
                );
                ExitCode::FAILURE
            }
        };
    }
    let mut out = Vec::new();
    if let Err(e) = clap_mangen::Man::new(command).render(&mut out) {
        eprintln!("tokengate: rendering the manual page: {e}");
        return ExitCode::FAILURE;
    }
    write_out(&out)
}

fn write_out(bytes: &[u8]) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokengate: writing to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}
