#!/usr/bin/env bash
# swagger.sh: generate the Swagger 2.0 documents of the frontend and the
# globalmanager from the swag annotations on their handlers.
#   scripts/swagger.sh [DIR]   writes DIR/frontend and DIR/globalmanager (default DIR: swagger)
# Each holds <name>_docs.go (package <name>, registered with swag under the
# instance name <name>), <name>_swagger.json and <name>_swagger.yaml.
# `make swagger` runs it; `make swagger-check` runs it into a temporary
# directory and compares. It installs swag into bin/tools when missing.
set -euo pipefail

SWAG_VERSION=v1.16.6
cd "$(dirname "$0")/.."
out=${1:-swagger}
TOOLS=${TOOLS:-$PWD/bin/tools}
SWAG=$TOOLS/swag

# swag v1.16.6 reports "v1.16.4" from --version (its Version constant was
# not bumped), so the build information is what tells the version.
if ! { [ -x "$SWAG" ] && go version -m "$SWAG" | grep -Eq "^[[:space:]]+mod[[:space:]]+github.com/swaggo/swag[[:space:]]+$SWAG_VERSION[[:space:]]"; }; then
  echo "swagger: installing swag $SWAG_VERSION into $TOOLS" >&2
  GOBIN=$TOOLS go install "github.com/swaggo/swag/cmd/swag@$SWAG_VERSION"
fi

for svc in frontend globalmanager; do
  # api holds the models; it is searched so that api.Job etc. resolve.
  "$SWAG" init --quiet \
    --generalInfo doc.go --dir "./$svc,./api" \
    --instanceName "$svc" --packageName "$svc" \
    --overridesFile scripts/swagger.overrides \
    --outputTypes go,json,yaml --output "$out/$svc"
done
# swag formats docs.go with go/format; gofmt again so that `gofmt -l` and
# this script agree whatever swag writes.
gofmt -w "$out"/*/*.go
