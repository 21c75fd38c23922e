"""Everything that knows etcd: the v3 JSON-gateway client (client), leases
kept alive (lease), where every key is and what JSON it holds (layout), the
metadata store (store) and a broker's view of the cluster (cluster)."""
