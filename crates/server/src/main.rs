//! The `dialbridge` binary: `dialbridge serve [--config FILE]`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dialbridge_server::config::Config;

#[derive(Parser)]
#[command(name = "dialbridge", version, about = "A SIP audio-conference bridge")]
struct Cli {
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    json_logs: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the bridge: the demo deployment (fixtures/demo.toml) unless --config is given.
    Serve {
        /// The configuration file.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Checks a configuration file and exits.
    Check {
        /// The configuration file.
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    dialbridge_server::logging::init(cli.json_logs);
    let result = match cli.command {
        Command::Serve { config } => load(config.as_deref()).and_then(serve),
        Command::Check { config } => load(Some(&config)).map(|c| {
            println!("{}: ok", c.path.display());
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dialbridge: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: Option<&std::path::Path>) -> Result<Config, dialbridge_server::Error> {
    let config = match path {
        Some(path) => Config::load(path)?,
        None => Config::demo()?,
    };
    // Validate the number plan before binding anything: a bad config never starts.
    dialbridge_server::plan_from(&config)?;
    Ok(config)
}

fn serve(config: Config) -> Result<(), dialbridge_server::Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let bound = dialbridge_server::bind(&config).await?;
        dialbridge_server::run(config, bound, dialbridge_server::shutdown_signal()).await
    })
}
