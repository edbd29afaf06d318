/**
 * The dashboard's template variables: the datasource, then cluster → namespace → pod, each narrowed by the
 * ones before it. "All" is `.*`, which also matches a series that lacks the label entirely, so one dashboard
 * serves a multi-cluster Prometheus, a single cluster and docker-compose alike.
 */
import * as dashboard from "@grafana/grafana-foundation-sdk/dashboard";
import { DATASOURCE } from "./panels.js";

/** The uid of the provisioned datasource (grafana/provisioning) and of kube-prometheus-stack's default one. */
export const DEFAULT_DATASOURCE_UID = "prometheus";

/** Every target's metric carries these labels; provisiond_leader is exported by every node at all times. */
const ANCHOR = "provisiond_leader";

export function datasourceVariable(): dashboard.DatasourceVariableBuilder {
  return new dashboard.DatasourceVariableBuilder("datasource")
    .label("Data source")
    .type("prometheus")
    .current({ selected: true, text: "Prometheus", value: DEFAULT_DATASOURCE_UID });
}

function labelVariable(
  label: string,
  narrowedBy: string[],
  o: { multi: boolean; description: string },
): dashboard.QueryVariableBuilder {
  const matchers = narrowedBy.map((l) => `${l}=~"$${l}"`).join(", ");
  const query = `label_values(${ANCHOR}${matchers ? `{${matchers}}` : ""}, ${label})`;
  return new dashboard.QueryVariableBuilder(label)
    .label(label)
    .description(o.description)
    .datasource(DATASOURCE)
    .query(query)
    .definition(query)
    .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
    .sort(dashboard.VariableSort.AlphabeticalAsc)
    .multi(o.multi)
    .includeAll(true)
    .allValue(".*")
    .current({ selected: true, text: "All", value: "$__all" });
}

export function labelVariables(): dashboard.QueryVariableBuilder[] {
  return [
    labelVariable("cluster", [], {
      multi: false,
      description: "Prometheus' external or target label `cluster`; empty (All) outside multi-cluster setups",
    }),
    labelVariable("namespace", ["cluster"], {
      multi: false,
      description: "Kubernetes namespace of the release (a ServiceMonitor target label)",
    }),
    labelVariable("pod", ["cluster", "namespace"], {
      multi: true,
      description: "provisiond pods; a pod's name is its node id",
    }),
  ];
}
