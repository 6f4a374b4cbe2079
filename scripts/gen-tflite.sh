#!/usr/bin/env bash
# Regenerates the TFLite FlatBuffer accessors from src/import/tflite/tflite.fbs (needs flatc,
# Debian package flatbuffers-compiler). The output is committed; ESM needs '.js' on relative imports.
set -euo pipefail
cd "$(dirname "$0")/../src/import/tflite"
rm -rf generated
flatc --ts -o generated tflite.fbs
find generated -name '*.ts' -exec sed -i -E "s#from '(\.[^']+)'#from '\1.js'#" {} +
