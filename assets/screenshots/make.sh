#!/usr/bin/env bash
# Makes the README's screenshots (assets/screenshots/*.png) by driving the real application on the
# software renderer, as `cargo run --release` starts it: the bundled demo study as its demo reader, the
# bundled demo model (tests/gui.rs, `readme_screenshots`). Takes minutes on a CPU (the demo model
# predicts every case, then is fine-tuned for a few epochs).
set -euo pipefail
cd "$(dirname "$0")/../.."
SACRO_SCREENSHOTS=1 cargo test --locked --test gui readme_screenshots -- --ignored --exact
ls -l assets/screenshots/*.png
