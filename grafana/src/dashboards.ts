/** Every generated dashboard and the files it is written to (the chart's copy travels in a ConfigMap). */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { clusterDashboard } from "./cluster.js";
import { renderJson } from "./render.js";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface Generated {
  files: string[];
  render: () => string;
}

export const DASHBOARDS: Generated[] = [
  {
    files: [
      join(ROOT, "grafana/dashboards/provisiond-cluster.json"),
      join(ROOT, "helm/provisiond/files/dashboards/provisiond-cluster.json"),
    ],
    render: () => renderJson(clusterDashboard()),
  },
];
