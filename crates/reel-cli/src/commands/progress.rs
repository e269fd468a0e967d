//! Progress bars for the pipeline's progress events.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use reel_sampling::progress::{Progress, Stage};

/// Draws one bar per stage on stderr (hidden when stderr is not a terminal).
pub struct StageBars {
    current: Option<(Stage, ProgressBar)>,
    quiet: bool,
}

impl StageBars {
    pub fn new(quiet: bool) -> Self {
        Self { current: None, quiet }
    }

    pub fn update(&mut self, progress: Progress) {
        if self.quiet {
            return;
        }
        let same_stage = matches!(&self.current, Some((stage, _)) if *stage == progress.stage);
        if !same_stage {
            self.finish();
            let bar = match progress.stage {
                Stage::Load(_) => {
                    let bar = ProgressBar::new_spinner();
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                }
                _ => {
                    let bar = ProgressBar::new(progress.total as u64);
                    bar.set_style(
                        ProgressStyle::with_template("{msg:>20} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}")
                            .expect("valid template")
                            .progress_chars("=> "),
                    );
                    bar
                }
            };
            bar.set_message(progress.stage.to_string());
            self.current = Some((progress.stage, bar));
        }
        if let Some((_, bar)) = &self.current {
            bar.set_length(progress.total as u64);
            bar.set_position(progress.done as u64);
        }
    }

    pub fn finish(&mut self) {
        if let Some((_, bar)) = self.current.take() {
            bar.finish();
        }
    }
}
