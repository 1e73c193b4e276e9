//! The `chainsmith` command-line tool: a thin shell over the library (see `cli`).

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    let args = cli::args::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(err) if cli::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("chainsmith: error: {err:#}");
            ExitCode::from(cli::exit_status(&err))
        }
    }
}
