//! Commands that are planned but not built yet: they say so and fail, rather than pretend.

use clap::Args;

/// Accepts any arguments so that the message, not a parse error, tells the user what is missing.
#[derive(Args)]
pub struct Planned {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    _args: Vec<String>,
}

pub fn not_built(command: &str, part: &str) -> anyhow::Result<()> {
    anyhow::bail!(
        "`reel {command}` is not built yet: it arrives with {part}. \
         See README.md for what works today (`reel models`, `reel bench transformer`)."
    )
}
