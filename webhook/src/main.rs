use clap::Parser as _;

fn main() -> anyhow::Result<()> {
    landgate_webhook::cli::Cli::parse().run()
}
