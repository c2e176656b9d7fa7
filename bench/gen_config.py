#!/usr/bin/env python3
"""Writes N config objects (a realistic mix of Istio and Kubernetes kinds) into DIR, spread
over files of 10 objects each, for benchmarking `weft validate`."""
import os
import sys

TEMPLATES = [
    """apiVersion: v1
kind: Service
metadata:
  name: svc-{i}
  namespace: ns-{ns}
  labels: {{app: svc-{i}}}
spec:
  selector: {{app: svc-{i}}}
  ports:
  - {{name: http, port: 9080}}
  - {{name: grpc-api, port: 9090}}
""",
    """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: vs-{i}
  namespace: ns-{ns}
spec:
  hosts: [svc-{i}]
  http:
  - name: canary
    match:
    - headers:
        end-user: {{exact: jason}}
      uri: {{prefix: /api/v1}}
    - uri: {{regex: "^/v[0-9]+/items/[a-z]+$"}}
    route:
    - destination: {{host: svc-{i}, subset: v2}}
    timeout: 3s
    retries: {{attempts: 3, perTryTimeout: 1s, retryOn: "5xx,connect-failure,reset"}}
  - fault:
      delay: {{fixedDelay: 7s, percentage: {{value: 10}}}}
    route:
    - destination: {{host: svc-{i}, subset: v1}}
      weight: 80
    - destination: {{host: svc-{i}, subset: v2}}
      weight: 20
""",
    """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: dr-{i}
  namespace: ns-{ns}
spec:
  host: svc-{i}
  trafficPolicy:
    connectionPool:
      tcp: {{maxConnections: 100, connectTimeout: 30ms}}
      http: {{http1MaxPendingRequests: 10, maxRequestsPerConnection: 1}}
    outlierDetection: {{consecutive5xxErrors: 5, interval: 1s, baseEjectionTime: 3m, maxEjectionPercent: 100}}
    loadBalancer: {{simple: LEAST_REQUEST}}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - name: v2
    labels: {{version: v2}}
    trafficPolicy:
      loadBalancer:
        consistentHash: {{httpHeaderName: x-user}}
""",
    """apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: ap-{i}
  namespace: ns-{ns}
spec:
  selector:
    matchLabels: {{app: svc-{i}}}
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/ns-{ns}/sa/client"]
    - source:
        namespaces: [ns-{ns}]
    to:
    - operation:
        methods: [GET, HEAD]
        paths: ["/api/*"]
    when:
    - key: request.headers[version]
      values: [v1, v2]
""",
    """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: se-{i}
  namespace: ns-{ns}
spec:
  hosts: [api-{i}.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports:
  - {{number: 443, name: https, protocol: TLS}}
""",
]


def main() -> None:
    directory, count = sys.argv[1], int(sys.argv[2])
    os.makedirs(directory, exist_ok=True)
    docs = [TEMPLATES[i % len(TEMPLATES)].format(i=i, ns=i % 20) for i in range(count)]
    for start in range(0, count, 10):
        with open(os.path.join(directory, f"config-{start // 10:04}.yaml"), "w") as f:
            f.write("---\n".join(docs[start:start + 10]))


if __name__ == "__main__":
    main()
