#!/usr/bin/env bash
# End-to-end on kind, for hosts WITH a Docker engine (CI; not this project's own machines, which have
# none). Creates a cluster with ingress-nginx and a local registry, builds the wharf image with
# hack/build-image.sh, pushes it there and installs it by digest (image.digest), runs MinIO and Dex
# (OIDC) in the cluster, installs the chart with its quick start, waits for the Registry to be Ready,
# then drives cargo and docker through the Ingress host.
#
#   hack/e2e-kind.sh            # keep the cluster afterwards: KEEP_CLUSTER=1
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CLUSTER=${CLUSTER:-wharf-e2e}
# The local registry the kind nodes pull from (kind's documented local-registry setup): the chart
# installs the image by the digest this registry reports, as a production install would.
REGISTRY_NAME=kind-registry
REGISTRY_PORT=${REGISTRY_PORT:-5001}
IMAGE=${IMAGE:-localhost:$REGISTRY_PORT/wharf:e2e}
HOST=${HOST:-registry.127.0.0.1.nip.io}
NS=wharf

for tool in docker kind kubectl helm cargo; do
  command -v "$tool" >/dev/null || { echo "e2e-kind: $tool is required" >&2; exit 1; }
done

cleanup() {
  [ "${KEEP_CLUSTER:-0}" = 1 ] && return
  kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  docker rm -f "$REGISTRY_NAME" >/dev/null 2>&1 || true
}
trap cleanup EXIT

if [ "$(docker inspect -f '{{.State.Running}}' "$REGISTRY_NAME" 2>/dev/null)" != true ]; then
  docker run -d --restart=always -p "127.0.0.1:$REGISTRY_PORT:5000" --network bridge --name "$REGISTRY_NAME" registry:2
fi

cat <<KIND | kind create cluster --name "$CLUSTER" --wait 120s --config=-
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
containerdConfigPatches:
  - |-
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "/etc/containerd/certs.d"
nodes:
  - role: control-plane
    kubeadmConfigPatches:
      - |
        kind: InitConfiguration
        nodeRegistration:
          kubeletExtraArgs:
            node-labels: "ingress-ready=true"
    extraPortMappings:
      - { containerPort: 80, hostPort: 80, protocol: TCP }
KIND

# Each node resolves localhost:$REGISTRY_PORT to the registry container on the kind network.
for node in $(kind get nodes --name "$CLUSTER"); do
  docker exec "$node" mkdir -p "/etc/containerd/certs.d/localhost:$REGISTRY_PORT"
  printf '[host."http://%s:5000"]\n' "$REGISTRY_NAME" |
    docker exec -i "$node" cp /dev/stdin "/etc/containerd/certs.d/localhost:$REGISTRY_PORT/hosts.toml"
done
docker network connect kind "$REGISTRY_NAME" 2>/dev/null || true

kubectl apply -f https://raw.githubusercontent.com/kubernetes/ingress-nginx/main/deploy/static/provider/kind/deploy.yaml
# Reproducible build (pinned base, SOURCE_DATE_EPOCH, npm ci) with its SBOM in dist/image/; pushed,
# then installed by the digest the registry reports (docker push may re-serialise the manifest).
hack/build-image.sh "$IMAGE" >/dev/null
docker push "$IMAGE" >/dev/null
DIGEST=$(docker inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$IMAGE" | sed -n "s#^localhost:$REGISTRY_PORT/wharf@##p" | head -n 1)
[ -n "$DIGEST" ] || { echo "e2e-kind: no registry digest for $IMAGE" >&2; exit 1; }
echo "e2e-kind: installing $IMAGE by digest $DIGEST"
kubectl -n ingress-nginx wait --for=condition=Available deployment/ingress-nginx-controller --timeout=180s

kubectl create namespace "$NS"
# MinIO as the S3 endpoint, and the Secret the custom resources reference.
kubectl -n "$NS" create secret generic wharf-s3 --from-literal=accessKeyId=wharf --from-literal=secretAccessKey=wharf-e2e-secret
kubectl -n "$NS" apply -f - <<'MINIO'
apiVersion: apps/v1
kind: Deployment
metadata: { name: minio }
spec:
  selector: { matchLabels: { app: minio } }
  template:
    metadata: { labels: { app: minio } }
    spec:
      containers:
        - name: minio
          image: quay.io/minio/minio:latest
          args: [server, /data]
          env:
            - { name: MINIO_ROOT_USER, value: wharf }
            - { name: MINIO_ROOT_PASSWORD, value: wharf-e2e-secret }
          ports: [{ containerPort: 9000 }]
          readinessProbe: { httpGet: { path: /minio/health/ready, port: 9000 } }
---
apiVersion: v1
kind: Service
metadata: { name: minio }
spec: { selector: { app: minio }, ports: [{ port: 9000 }] }
MINIO
# Dex as the OpenID provider (static client and password).
kubectl -n "$NS" apply -f - <<'DEX'
apiVersion: v1
kind: ConfigMap
metadata: { name: dex }
data:
  config.yaml: |
    issuer: http://dex.wharf.svc:5556/dex
    storage: { type: memory }
    web: { http: 0.0.0.0:5556 }
    staticClients:
      - { id: wharf, secret: wharf-dex-secret, name: wharf, redirectURIs: ["http://registry.127.0.0.1.nip.io/ktra/api/v1/openid/callback"] }
    enablePasswordDB: true
    staticPasswords:
      - { email: alice@example.com, username: alice, userID: "1", hash: "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W" }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: dex }
spec:
  selector: { matchLabels: { app: dex } }
  template:
    metadata: { labels: { app: dex } }
    spec:
      containers:
        - name: dex
          image: ghcr.io/dexidp/dex:latest
          args: [dex, serve, /etc/dex/config.yaml]
          ports: [{ containerPort: 5556 }]
          volumeMounts: [{ name: config, mountPath: /etc/dex }]
      volumes: [{ name: config, configMap: { name: dex } }]
---
apiVersion: v1
kind: Service
metadata: { name: dex }
spec: { selector: { app: dex }, ports: [{ port: 5556 }] }
---
apiVersion: v1
kind: Secret
metadata: { name: dex-client }
stringData: { client_id: wharf, client_secret: wharf-dex-secret }
DEX
kubectl -n "$NS" wait --for=condition=Available deployment/minio deployment/dex --timeout=180s

helm install wharf charts/wharf --namespace "$NS" --wait \
  --set image.repository="${IMAGE%:*}" --set image.digest="$DIGEST" \
  --set quickstart.enabled=true \
  --set quickstart.registry.host="$HOST" \
  --set quickstart.ingressClassName=nginx \
  --set networkPolicy.ingressController.namespaceSelector.matchLabels."kubernetes\.io/metadata\.name"=ingress-nginx \
  --set networkPolicy.ingressController.podSelector.matchLabels."app\.kubernetes\.io/name"=ingress-nginx \
  --set "quickstart.trustedProxies={10.244.0.0/16}" \
  --set quickstart.storage.endpoint=http://minio.wharf.svc:9000 \
  --set quickstart.storage.credentialsSecretName=wharf-s3 \
  --set quickstart.storage.deletionPolicy=Delete

kubectl -n "$NS" apply -f - <<'OIDC'
apiVersion: wharf.dev/v1alpha1
kind: OpenIdProvider
metadata: { name: dex }
spec:
  issuerUrl: http://dex.wharf.svc:5556/dex
  clientSecretRef: { name: dex-client }
OIDC
kubectl -n "$NS" patch authservice wharf --type merge -p '{"spec":{"openIdProviders":[{"name":"dex"}]}}'
kubectl -n "$NS" wait --for=condition=Ready openidprovider/dex authservice/wharf registry/wharf --timeout=300s
kubectl -n "$NS" get openidproviders,authservices,registries -o wide

# A user, a token, then cargo and docker against the one Ingress host.
admin_password=$(kubectl -n "$NS" get secret wharf-auth-admin -o jsonpath='{.data.password}' | base64 -d)
curl -fsS -X POST "http://$HOST/ktra/api/v1/new_user/alice" -u "admin:$admin_password" \
  -H 'content-type: application/json' -d '{"password":"alice-e2e-password"}'
token=$(curl -fsS -X POST "http://$HOST/ktra/api/v1/login/alice" -H 'content-type: application/json' \
  -d '{"password":"alice-e2e-password"}' | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')

work=$(mktemp -d)
export CARGO_HOME="$work/cargo"
mkdir -p "$CARGO_HOME"
cat > "$CARGO_HOME/config.toml" <<CARGO
[registries.wharf]
index = "sparse+http://$HOST/index/"
CARGO
cargo login --registry wharf "$token"
cargo new --lib "$work/hello" --name e2e-hello
(cd "$work/hello" && cargo publish --registry wharf --allow-dirty)
cargo new "$work/user" --name e2e-user
printf 'e2e-hello = { version = "0.1", registry = "wharf" }\n' >> "$work/user/Cargo.toml"
(cd "$work/user" && cargo build)

echo alice-e2e-password | docker login "$HOST" -u alice --password-stdin
docker pull busybox:latest
docker tag busybox:latest "$HOST/alice/busybox:e2e"
docker push "$HOST/alice/busybox:e2e"
docker rmi "$HOST/alice/busybox:e2e"
docker pull "$HOST/alice/busybox:e2e"
# The chart's own check, then the uninstall hook with every resource still present.
helm test wharf --namespace "$NS"
helm uninstall wharf --namespace "$NS" --wait
test -z "$(kubectl get registries,authservices,openidproviders -A -o name)"
echo "e2e-kind: OK"
