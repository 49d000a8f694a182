use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tokengate::cli::run(tokengate::cli::Cli::parse())
}
