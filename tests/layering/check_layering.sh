#!/usr/bin/env bash
# The folders' dependency rule (DESIGN.md, "Layout"): eventbuffer/ depends on nothing of the
# others, metrics/ on eventbuffer/ only, controller/ wires them. An include that points the
# other way fails this check, naming the file and line.
#   tests/layering/check_layering.sh [REPO_ROOT]
set -euo pipefail
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root"
status=0
check() {  # check FOLDER FORBIDDEN_PREFIX...
  local folder=$1
  shift
  for prefix in "$@"; do
    if hits=$(grep -rnE "^[[:space:]]*#[[:space:]]*include[[:space:]]*[\"<]${prefix}/" "$folder" \
        --include='*.h' --include='*.cpp' --include='*.cc' --include='*.hpp'); then
      printf 'layering: %s/ must not include %s/:\n%s\n' "$folder" "$prefix" "$hits" >&2
      status=1
    fi
  done
}
check eventbuffer controller metrics
check metrics controller
if [[ $status == 0 ]]; then
  echo "layering: eventbuffer/ includes nothing of metrics/ or controller/; metrics/ nothing of controller/"
fi
exit $status
