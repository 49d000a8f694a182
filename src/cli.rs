//! The `tokengate` command line: parse, load config, start telemetry, call the library.

mod audit;
mod backup;
mod credential;
mod docs;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::app::{self, App};
use crate::config::{self, Config, ConfigFile};

pub use token::{CreateArgs, CredentialCommand, TokenCommand};

/// API-token authentication gateway for Bitbucket Data Center.
#[derive(Debug, Parser)]
#[command(name = "tokengate", version, about, long_about = None)]
pub struct Cli {
    /// Config file (TOML); without it, TOKENGATE_CONFIG names one, else config/tokengate.toml
    /// or /etc/tokengate/tokengate.toml is read if it exists. Every key can also be set with
    /// TOKENGATE_SECTION__KEY.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: the proxy in front of Bitbucket and the admin listener.
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Validate the config and print the file read and the effective values, secrets redacted.
    CheckConfig,
    /// Create, list, show, update, rotate and revoke API tokens on the configured store (no
    /// admin token needed).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Store, list and delete users' Bitbucket credentials, for upstream.identity =
    /// "credential".
    Credential {
        #[command(subcommand)]
        command: CredentialCommand,
    },
    /// Read the audit trail of the configured store, newest first.
    Audit(audit::AuditArgs),
    /// Copy the SQLite store to a new file, consistently, while gateways keep running.
    Backup {
        /// The file to write; it must not exist yet.
        path: PathBuf,
    },
    /// Print a shell completion script: `tokengate completions bash > /etc/bash_completion.d/tokengate`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page, or write one page per command into a directory.
    Man {
        /// Write tokengate.1 and a page per subcommand here instead of printing tokengate.1.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// Exit code for an invalid config or invalid arguments.
const EXIT_CONFIG: u8 = 2;

/// Runs the parsed command line.
#[allow(clippy::needless_pass_by_value)] // owns the parsed command line, like main
pub fn run(cli: Cli) -> ExitCode {
    // Generated from the command line alone: no config needed.
    match &cli.command {
        Command::Completions { shell } => return docs::completions(*shell),
        Command::Man { dir } => return docs::man(dir.as_deref()),
        _ => {}
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("tokengate: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // `serve` logs these once logging is up; the other commands have only stderr.
    if !matches!(cli.command, Command::Serve) {
        for warning in config.warnings() {
            eprintln!("tokengate: warning: {warning}");
        }
    }
    let result = match cli.command {
        Command::Serve => serve(config),
        Command::Migrate => with_runtime(async move {
            let store = app::open_store(&config).await?;
            drop(store);
            println!("migrations applied");
            Ok(())
        }),
        Command::CheckConfig => check_config(&config),
        Command::Token { command } => return token::run_token(&config, command),
        Command::Credential { command } => return token::run_credential(&config, command),
        Command::Audit(args) => return audit::run(&config, &args),
        Command::Backup { path } => return backup::run(&config, &path),
        Command::Completions { .. } | Command::Man { .. } => unreachable!("answered above"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokengate: {e:#}");
            // A log.file that cannot be opened, a TLS file that cannot be used, or a listener
            // address another process holds, is a config value that does not work.
            let config_value = e.downcast_ref::<config::ConfigError>().is_some()
                || matches!(
                    e.downcast_ref(),
                    Some(crate::telemetry::TelemetryError::File { .. })
                )
                || e.is::<app::AddressInUse>();
            if config_value {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Prints the file read and the effective config, or fails with a config `serve` could not
/// start with: an invalid value (refused when loading), a `log.file` it cannot open, or TLS files
/// it cannot use.
fn check_config(config: &Config) -> anyhow::Result<()> {
    let raw = config::load_raw(&config.file, std::env::vars())?;
    if let Some(file) = &config.log.file {
        crate::telemetry::check_log_file(file)?;
    }
    // The files each TLS key names: readable, a matching pair, not expired.
    let tls = crate::tls::Setup::load(config)?;
    tls.check_not_expired(chrono::Utc::now())?;
    println!("# {}", config.file);
    print!("{}", raw.redacted_toml());
    if raw.node_id.is_none() {
        println!("# node_id derived from the host name: {}", config.node_id);
    }
    for cert in tls.certs() {
        let served = cert.served();
        println!(
            "# {}.tls: certificate serial {}, expires {}",
            cert.listener().name(),
            served.serial,
            served.not_after
        );
    }
    if let Some((_, roots)) = &tls.upstream {
        println!(
            "# upstream: Bitbucket's certificate is verified against {} system CA certificates and {} of upstream.ca_file",
            roots.system, roots.ca_file
        );
    }
    Ok(())
}

fn with_runtime(work: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(work)
}

fn serve(config: Config) -> anyhow::Result<()> {
    let guard = crate::telemetry::init(&config.log).context("starting logging")?;
    match &config.file {
        ConfigFile::None => tracing::info!(target: "tokengate::config", "{}", config.file),
        file => tracing::info!(target: "tokengate::config", "read {file}"),
    }
    for warning in config.warnings() {
        tracing::warn!(target: "tokengate::config", "{warning}");
    }
    let tls = crate::tls::Setup::load(&config)?;
    let listener = crate::proxy::bind(config.proxy.listen)
        .map_err(|e| app::bind_error("proxy.listen", config.proxy.listen, e))?;
    let drops = Arc::new(move || guard.dropped_lines());
    // The control runtime, on this thread: start-up, the store's connections, the admin
    // listener and background work. The proxy runs on worker threads of its own.
    with_runtime(async move {
        let app = App::build(config, listener, tls, drops).await?;
        app.run(shutdown_signal()).await
    })
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!(target: "tokengate::app", "shutdown signal received");
}
