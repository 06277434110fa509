#!/usr/bin/env bash
# Makes kube-eventbuffer's serving certificate without cert-manager: a private CA and, signed
# by it, a certificate for the Service's DNS names; then the Secret the Deployment mounts
# and the CA for the APIService's caBundle.
#
#   scripts/gen-serving-cert.sh [--out DIR] [--apply] [options]
#
#   --out DIR      write the files below into DIR (created, mode 0700); no cluster needed.
#                  If DIR already holds ca.crt and ca.key, that CA is reused: the serving
#                  certificate is renewed and the caBundle stays the same.
#   --apply        with kubectl: apply the Secret (server-side, so that no
#                  last-applied-configuration annotation copies the key) and patch the
#                  APIService's caBundle. Run it after `kubectl apply -k` of an overlay.
#   (neither)      print the Secret as YAML on stdout and the caBundle patch command on
#                  stderr (e.g. `... > secret.yaml`).
#   --namespace NS       the Service's namespace (default kube-eventbuffer)
#   --service NAME       the Service's name (default kube-eventbuffer)
#   --secret NAME        the Secret's name (default kube-eventbuffer-serving-cert)
#   --apiservice NAME    the APIService (default v1alpha1.eventbuffer.dev)
#   --no-apiservice      only the Secret: no caBundle patch (overlays/namespaced, which
#                        registers no APIService)
#   --cluster-domain D   the cluster's DNS domain (default cluster.local)
#   --days N             validity of the serving certificate (default 365)
#   --ca-days N          validity of a new CA (default 3650)
#
# Files in DIR:
#   ca.crt, ca.key        the CA (keep ca.key private; it is needed only to renew)
#   tls.crt, tls.key      the serving certificate and its key
#   secret.yaml           Secret NAME (type kubernetes.io/tls: tls.crt, tls.key, ca.crt)
#   apiservice-cabundle.yaml   a patch setting the APIService's spec.caBundle to ca.crt
#                         (not with --no-apiservice)
#   kustomization.yaml    a kustomize Component of the two, for an overlay of your own:
#                         components: [<manifests/stages/STAGE>, <DIR>]
#
# The certificate names NAME, NAME.NS, NAME.NS.svc and NAME.NS.svc.<cluster domain>
# (the aggregator verifies NAME.NS.svc; the ServiceMonitor verifies NAME). Keys are ECDSA
# P-256. Needs openssl; kubectl for --apply. Environment: KUBECTL (default kubectl),
# OPENSSL (default openssl).
set -euo pipefail

die() { echo "gen-serving-cert: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }

out="" apply=0 with_apiservice=1
namespace=kube-eventbuffer service=kube-eventbuffer secret=kube-eventbuffer-serving-cert
apiservice=v1alpha1.eventbuffer.dev domain=cluster.local days=365 ca_days=3650
KUBECTL=${KUBECTL:-kubectl}
OPENSSL=${OPENSSL:-openssl}

while (($#)); do
  case $1 in
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --out=*) out=${1#*=}; shift ;;
    --apply) apply=1; shift ;;
    --no-apiservice) with_apiservice=0; shift ;;
    --namespace|--service|--secret|--apiservice|--cluster-domain|--days|--ca-days)
      (($# >= 2)) || die "$1 needs a value"
      case $1 in
        --namespace) namespace=$2 ;; --service) service=$2 ;; --secret) secret=$2 ;;
        --apiservice) apiservice=$2 ;; --cluster-domain) domain=$2 ;;
        --days) days=$2 ;; --ca-days) ca_days=$2 ;;
      esac
      shift 2 ;;
    -h|--help) usage ;;
    *) echo "gen-serving-cert: unknown argument '$1'" >&2; usage 2 ;;
  esac
done

# Names end up in certificate extensions and YAML: accept DNS names only.
label='[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?'
for v in "$namespace" "$service"; do
  [[ $v =~ ^$label$ ]] || die "'$v' is not a DNS label (a namespace or Service name)"
done
for v in "$secret" "$apiservice" "$domain"; do
  [[ $v =~ ^$label(\.$label)*$ ]] || die "'$v' is not a DNS subdomain"
done
[[ $days =~ ^[1-9][0-9]*$ && $ca_days =~ ^[1-9][0-9]*$ ]] || die "--days and --ca-days take a positive number"
command -v "$OPENSSL" >/dev/null || die "openssl is not installed (Debian package openssl)"
if ((apply)); then command -v "$KUBECTL" >/dev/null || die "kubectl not found (set KUBECTL)"; fi

umask 077
if [[ -n $out ]]; then
  mkdir -p "$out"
  dir=$(cd "$out" && pwd)
else
  dir=$(mktemp -d)
fi
work=$(mktemp -d)
trap 'rm -rf "$work"; [[ -n $out ]] || rm -rf "$dir"' EXIT

ssl() { "$OPENSSL" "$@" 2>"$work/err" || { cat "$work/err" >&2; die "openssl $1 failed"; }; }
serial() { echo "0x$("$OPENSSL" rand -hex 16)"; }

# ---- the CA: reused when DIR holds one, so that a renewal keeps the caBundle -----------
if [[ -s $dir/ca.crt && -s $dir/ca.key ]]; then
  ca_pub=$(ssl x509 -in "$dir/ca.crt" -noout -pubkey)
  key_pub=$(ssl pkey -in "$dir/ca.key" -pubout)
  [[ $ca_pub == "$key_pub" ]] || die "$dir/ca.key does not belong to $dir/ca.crt"
  echo "gen-serving-cert: reusing the CA in $dir" >&2
else
  ssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/ca.key"
  cat >"$work/ca.ext" <<EOF
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
  ssl req -new -key "$dir/ca.key" -subj "/CN=$service-ca@$(date +%s)" -out "$work/ca.csr"
  ssl x509 -req -in "$work/ca.csr" -signkey "$dir/ca.key" -days "$ca_days" \
    -set_serial "$(serial)" -extfile "$work/ca.ext" -sha256 -out "$dir/ca.crt"
fi

# ---- the serving certificate --------------------------------------------------------
svc_dns="$service.$namespace.svc"
cat >"$work/tls.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:$service, DNS:$service.$namespace, DNS:$svc_dns, DNS:$svc_dns.$domain
authorityKeyIdentifier = keyid
subjectKeyIdentifier = hash
EOF
ssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/tls.key"
ssl req -new -key "$work/tls.key" -subj "/CN=$svc_dns" -out "$work/tls.csr"
ssl x509 -req -in "$work/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -days "$days" \
  -set_serial "$(serial)" -extfile "$work/tls.ext" -sha256 -out "$work/tls.crt"
ssl verify -CAfile "$dir/ca.crt" "$work/tls.crt" >/dev/null
mv "$work/tls.key" "$dir/tls.key"
mv "$work/tls.crt" "$dir/tls.crt"

# ---- the Secret, the caBundle patch and a Component of both ---------------------------
b64() { base64 -w0 <"$1"; }
ca_bundle=$(b64 "$dir/ca.crt")
cat >"$dir/secret.yaml" <<EOF
# Made by scripts/gen-serving-cert.sh for $svc_dns; mounted by the Deployment.
apiVersion: v1
kind: Secret
metadata:
  name: $secret
  namespace: $namespace
  labels:
    app.kubernetes.io/name: kube-eventbuffer
    app.kubernetes.io/part-of: kube-eventbuffer
type: kubernetes.io/tls
data:
  tls.crt: $(b64 "$dir/tls.crt")
  tls.key: $(b64 "$dir/tls.key")
  ca.crt: $ca_bundle
EOF
rm -f "$dir/apiservice-cabundle.yaml"
if ((with_apiservice)); then
  cat >"$dir/apiservice-cabundle.yaml" <<EOF
# Made by scripts/gen-serving-cert.sh: the CA that signed the serving certificate.
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata:
  name: $apiservice
spec:
  caBundle: $ca_bundle
EOF
fi
cat >"$dir/kustomization.yaml" <<EOF
# Made by scripts/gen-serving-cert.sh: the serving certificate Secret and the APIService's
# caBundle, as a Component for an overlay of your own (docs/deploy.md).
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
resources:
  - secret.yaml
EOF
if ((with_apiservice)); then
  printf 'patches:\n  - path: apiservice-cabundle.yaml\n' >>"$dir/kustomization.yaml"
fi
chmod 600 "$dir"/*

patch_json="{\"spec\":{\"caBundle\":\"$ca_bundle\"}}"
if ((apply)); then
  "$KUBECTL" get namespace "$namespace" >/dev/null ||
    die "namespace $namespace does not exist: apply the manifests first (kubectl apply -k ...)"
  "$KUBECTL" apply --server-side --force-conflicts --field-manager=gen-serving-cert \
    -f "$dir/secret.yaml"
  if ((!with_apiservice)); then
    :
  elif "$KUBECTL" get apiservice "$apiservice" >/dev/null 2>&1; then
    "$KUBECTL" patch apiservice "$apiservice" --type=merge -p "$patch_json"
  else
    echo "gen-serving-cert: APIService $apiservice does not exist; after applying the" \
      "manifests, patch it with:" >&2
    echo "  $KUBECTL patch apiservice $apiservice --type=merge -p '$patch_json'" >&2
  fi
elif [[ -z $out ]]; then
  cat "$dir/secret.yaml"
  if ((with_apiservice)); then
    echo "gen-serving-cert: apply the Secret above, then set the APIService's caBundle:" >&2
    echo "  $KUBECTL patch apiservice $apiservice --type=merge -p '$patch_json'" >&2
  fi
fi
if [[ -n $out ]]; then
  echo "gen-serving-cert: wrote to $dir: $(cd "$dir" && echo *)" >&2
fi
