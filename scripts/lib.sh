# Provisioning shared by scripts/start.sh and scripts/test.sh. Every step is idempotent
# and cheap when already done; a step that cannot be done stops with one clear line.
set -euo pipefail

SHOAL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHOAL_STATE="${SHOAL_STATE:-$SHOAL_ROOT/.shoal}"
VENV="$SHOAL_ROOT/.venv"
KAFKA_JARS="$SHOAL_STATE/kafka/jars"
export SHOAL_ROOT SHOAL_STATE
# The state folder holds Kafka's data, credentials and logs: its owner's only.
mkdir -p "$SHOAL_STATE/logs" && chmod 700 "$SHOAL_STATE" "$SHOAL_STATE/logs"

say() { printf 'shoal setup: %s\n' "$*" >&2; }
die() { printf 'shoal setup: FAILED: %s\n' "$*" >&2; exit 1; }

stamp_of() { sha256sum "$@" | sha256sum | cut -c1-16; }

ensure_python() {
  command -v python3 >/dev/null || die "python3 not found; install Python 3.11 or newer"
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "Python 3.11 or newer is needed; found $(python3 --version 2>&1)"
}

ensure_venv() {
  ensure_python
  local stamp; stamp=$(stamp_of "$SHOAL_ROOT/pyproject.toml")
  if [[ -x "$VENV/bin/python" && -f "$VENV/.shoal-stamp" && "$(cat "$VENV/.shoal-stamp")" == "$stamp" ]]; then
    return
  fi
  say "installing Python environment in .venv"
  [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV" || die "could not create $VENV (python3 -m venv)"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
  mkdir -p "$SHOAL_STATE/logs"
  "$VENV/bin/pip" install -q -e "$SHOAL_ROOT[dev]" >"$SHOAL_STATE/logs/pip.log" 2>&1 \
    || die "pip could not install Shoal's dependencies (is PyPI reachable? see $SHOAL_STATE/logs/pip.log)"
  echo "$stamp" > "$VENV/.shoal-stamp"
}

# Debian packages: what running Shoal needs, and what only the tests and benchmarks need.
ensure_apt_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  [[ -x /bin/busybox ]] || missing+=(busybox-static)
  command -v kcat >/dev/null || missing+=(kcat)
  install_apt "${missing[@]}"
}

ensure_test_packages() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v chromium >/dev/null || missing+=(chromium)
  command -v prometheus >/dev/null || missing+=(prometheus)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  install_apt "${missing[@]}"
}

install_apt() {
  local missing=("$@")
  ((${#missing[@]} == 0)) && return
  say "installing Debian packages: ${missing[*]}"
  [[ $(id -u) == 0 ]] || die "installing ${missing[*]} needs root (run as root or install them first)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null \
    || die "apt-get update failed (is the Debian mirror reachable?)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed"
}

ensure_dockerd() {
  ensure_apt_packages
  if docker info >/dev/null 2>&1; then return; fi
  say "starting dockerd (log: $SHOAL_STATE/logs/dockerd.log)"
  mkdir -p "$SHOAL_STATE/logs"
  setsid dockerd >"$SHOAL_STATE/logs/dockerd.log" 2>&1 < /dev/null &
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && return
    sleep 0.5
  done
  die "dockerd did not answer within 30 s; see $SHOAL_STATE/logs/dockerd.log"
}

ensure_kafka_jars() {
  command -v java >/dev/null || die "java not found; Kafka 4 needs a JDK 17 or newer (apt-get install openjdk-17-jre-headless)"
  local major; major=$(java -version 2>&1 | sed -nE 's/.*version "([0-9]+).*/\1/p' | head -n1)
  [[ -n "$major" && "$major" -ge 17 ]] || die "Kafka 4 needs Java 17 or newer; found Java ${major:-unknown}"
  local pom="$SHOAL_ROOT/deploy/kafka/pom.xml" stamp
  stamp=$(stamp_of "$pom")
  if [[ -f "$KAFKA_JARS/.stamp" && "$(cat "$KAFKA_JARS/.stamp")" == "$stamp" ]]; then return; fi
  command -v mvn >/dev/null || die "mvn not found; Maven resolves the Kafka jars (apt-get install maven)"
  say "resolving Apache Kafka jars from Maven Central into $KAFKA_JARS"
  rm -rf "$KAFKA_JARS.tmp" && mkdir -p "$KAFKA_JARS.tmp"
  mvn -q -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$KAFKA_JARS.tmp" >"$SHOAL_STATE/mvn.log" 2>&1 \
    || die "Maven could not resolve Kafka (see $SHOAL_STATE/mvn.log; is Maven Central reachable?)"
  echo "$stamp" > "$KAFKA_JARS.tmp/.stamp"
  rm -rf "$KAFKA_JARS" && mv "$KAFKA_JARS.tmp" "$KAFKA_JARS"
}

HELM_VERSION=v3.22.0
HELM="$SHOAL_STATE/tools/helm"

# Helm comes from the Go module proxy (`go install`), which compiles it: minutes on a fresh
# machine. It builds in the background at low priority while the suite runs; the chart's
# tests wait for it (and report the build log if it failed).
start_helm_build() {
  if [[ -x "$HELM" ]] && "$HELM" version --short 2>/dev/null | grep -q "^${HELM_VERSION%.*}"; then
    return
  fi
  command -v go >/dev/null || die "go not found; helm is built with \`go install\` (install Go 1.22 or newer)"
  mkdir -p "$SHOAL_STATE/tools" "$SHOAL_STATE/logs"
  rm -f "$SHOAL_STATE/tools/helm.failed"
  say "building helm $HELM_VERSION in the background (log: $SHOAL_STATE/logs/helm-build.log)"
  (
    if GOBIN="$SHOAL_STATE/tools/.build" nice -n 19 go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" \
        >"$SHOAL_STATE/logs/helm-build.log" 2>&1; then
      mv "$SHOAL_STATE/tools/.build/helm" "$HELM"
    else
      touch "$SHOAL_STATE/tools/helm.failed"
    fi
  ) </dev/null &
}

provision_all() {
  mkdir -p "$SHOAL_STATE"
  ensure_venv
  ensure_dockerd
  ensure_kafka_jars
}
