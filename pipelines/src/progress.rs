//! Progress bars for long work (generate, synthesize, train, replay): one style, hidden when not wanted.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `total` steps drawn with `template` (indicatif's syntax), or a
/// hidden one when `shown` is false, so callers tick it either way.
pub fn bar(shown: bool, total: u64, template: &str) -> ProgressBar {
    if !shown {
        return ProgressBar::hidden();
    }
    ProgressBar::new(total)
        .with_style(ProgressStyle::with_template(template).expect("a valid progress template"))
}
