use std::process::ExitCode;

use clap::Parser;

/// mimalloc returns large blocks to the system when freed: argon2's 19 MiB working memory
/// does not stay resident after each verification, as it does with glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tokengate::cli::run(tokengate::cli::Cli::parse())
}
