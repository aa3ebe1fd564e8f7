# Builds the cluster's own images locally (no registry exists) and imports Docker images into
# the test cluster's containerd (sourced by cluster.sh; uses its variables).

pause_image="registry.k8s.io/pause:$PAUSE_TAG"
metrics_server_image="registry.k8s.io/metrics-server/metrics-server:$METRICS_SERVER_VERSION"

# Builds an image holding one static binary (FROM scratch unless a base is given) unless Docker
# already has it. With a directory, the binary lands there and PATH covers it (kubeadm's static
# pods call their command by name, e.g. `kube-apiserver`); otherwise it is /<binary>.
build_scratch_image() { # tag binary user [dir] [base]
  local tag=$1 binary=$2 user=$3 dir=${4:-} base=${5:-scratch} ctx name
  if docker image inspect "$tag" >/dev/null 2>&1; then return 0; fi
  log "building image $tag"
  ctx=$(mktemp -d)
  name=$(basename "$binary")
  cp "$binary" "$ctx/$name"
  {
    echo "FROM $base"
    echo "COPY $name $dir/$name"
    [[ -n $dir ]] && echo "ENV PATH=$dir:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
    echo "USER $user"
    echo "ENTRYPOINT [\"$dir/$name\"]"
  } >"$ctx/Dockerfile"
  # Legacy builder: buildx is absent here; FROM scratch or a local base never pulls.
  DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$ctx" >"$ctx/build.log" 2>&1 ||
    { cat "$ctx/build.log" >&2; die "docker build of $tag failed"; }
  rm -rf "$ctx"
}

build_pause_image() {
  if docker image inspect "$pause_image" >/dev/null 2>&1; then return 0; fi
  local src out
  # pause.c ships in the k8s.io/kubernetes module zip already in the Go module cache.
  src=$(GOMODCACHE=$cache/go/mod GOTOOLCHAIN=local \
    go -C "$here/go/kubernetes" list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c
  [[ -f $src ]] || die "pause.c not found at $src (is the Go module cache complete? run build.sh)"
  out=$(mktemp -d)
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_TAG-scalelab" -o "$out/pause" "$src"
  build_scratch_image "$pause_image" "$out/pause" 65535:65535
  rm -rf "$out"
}

build_metrics_server_image() {
  build_scratch_image "$metrics_server_image" "$bin_dir/metrics-server" 65534
}

ctr_() { ctr --address "$containerd_sock" --namespace k8s.io "$@"; }

# Imports Docker images into our containerd (as 'kind load docker-image' does).
import_images() { # image...
  local img id
  for img in "$@"; do
    id=$(docker image inspect -f '{{.Id}}' "$img" 2>/dev/null) || die "image $img is not in Docker"
    if [[ $(ctr_ images ls -q "name==$(qualified "$img")" 2>/dev/null) ]] &&
      grep -qxF "$img $id" "$state/imported-images" 2>/dev/null; then
      continue
    fi
    log "importing $img into the cluster's containerd"
    docker save "$img" | ctr_ images import --all-platforms - >/dev/null
    grep -vF "$img " "$state/imported-images" >"$state/imported-images.new" 2>/dev/null || true
    echo "$img $id" >>"$state/imported-images.new"
    mv "$state/imported-images.new" "$state/imported-images"
  done
}

# containerd stores Docker Hub short names fully qualified.
qualified() { # image
  local name=$1 first=${1%%/*}
  if [[ $name != */* ]]; then echo "docker.io/library/$name"
  elif [[ $first != *.* && $first != *:* && $first != localhost ]]; then echo "docker.io/$name"
  else echo "$name"; fi
}
