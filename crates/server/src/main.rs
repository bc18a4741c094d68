//! The `dialbridge` binary: `dialbridge serve [--config FILE]`, `dialbridge check FILE`
//! and `dialbridge token create|list|revoke` (the admin API's tokens, in the bridge's
//! durable file, usable while the bridge runs).

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
    /// Makes, lists and revokes the admin API's tokens (kept in [admin] cdr_database, or
    /// in [shared] postgres when that is set).
    Token {
        /// The configuration file (the demo's unless given).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Makes a token and prints its secret (once, on standard output).
    Create {
        /// admin, operator, tenant-admin or read-only.
        #[arg(long)]
        role: String,
        /// The tenant a tenant-admin token is bound to.
        #[arg(long)]
        tenant: Option<String>,
        /// The provider an operator token is bound to ("Telco A").
        #[arg(long)]
        provider: Option<String>,
        /// What it is for.
        #[arg(long)]
        name: String,
    },
    /// Lists the tokens (never a secret).
    List,
    /// Revokes a token: the bridge refuses it from its next request on.
    Revoke {
        /// The token's id, as `token list` shows it.
        id: i64,
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
        Command::Token { config, command } => {
            load(config.as_deref()).and_then(|c| token(&c, command))
        }
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

fn token(config: &Config, command: TokenCommand) -> Result<(), dialbridge_server::Error> {
    use dialbridge_server::Error;
    use dialbridge_server::tokens::{self, Principal, Role};

    let path = &config.admin.cdr_database;
    if config.shared.postgres.is_none() && path == ":memory:" {
        return Err(Error::Token(format!(
            "{}: [admin] cdr_database is \":memory:\"; a token kept there would vanish",
            config.path.display()
        )));
    }
    // Where the bridge keeps them: its file, or the database the nodes share.
    let store = dialbridge_server::open_cdr_store(config)?;
    match command {
        TokenCommand::Create {
            role,
            tenant,
            provider,
            name,
        } => {
            let principal =
                Principal::new(Role::parse(&role)?, provider.as_deref(), tenant.as_deref())?;
            let router = dialbridge_router::Router::new(dialbridge_server::plan_from(config)?);
            principal.check_scope(&router)?;
            let made = tokens::create(&store, &name, &principal)?;
            let v = &made.view;
            eprintln!(
                "token {} ({}{}) made; its secret is shown this once:",
                v.id,
                v.role,
                v.scope
                    .as_deref()
                    .map(|s| format!(" of {s}"))
                    .unwrap_or_default()
            );
            println!("{}", made.secret);
        }
        TokenCommand::List => {
            println!(
                "{:>4}  {:<12}  {:<16}  {:<24}  {:<7}  name",
                "id", "role", "scope", "created", "revoked"
            );
            for t in tokens::list(&store)? {
                println!(
                    "{:>4}  {:<12}  {:<16}  {:<24}  {:<7}  {}",
                    t.id,
                    t.role,
                    t.scope.as_deref().unwrap_or("-"),
                    t.created,
                    if t.revoked { "yes" } else { "no" },
                    t.name
                );
            }
        }
        TokenCommand::Revoke { id } => {
            let t = tokens::revoke(&store, id)?;
            println!("token {} ({}) revoked", t.id, t.name);
        }
    }
    Ok(())
}
