/**
 * Panel factories over the foundation SDK's builders, so every panel of a dashboard gets the same datasource,
 * legend, tooltip and sizing rules and cluster.ts only says what each panel shows.
 */
import * as common from "@grafana/grafana-foundation-sdk/common";
import * as dashboard from "@grafana/grafana-foundation-sdk/dashboard";
import { DataqueryBuilder } from "@grafana/grafana-foundation-sdk/prometheus";
import * as stat from "@grafana/grafana-foundation-sdk/stat";
import * as statetimeline from "@grafana/grafana-foundation-sdk/statetimeline";
import * as timeseries from "@grafana/grafana-foundation-sdk/timeseries";

/** Whatever the `datasource` variable selects: no `__inputs`, which provisioning from files cannot fill in. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax, not a JS template
export const DATASOURCE = { type: "prometheus", uid: "${datasource}" };

export interface Query {
  expr: string;
  legend: string;
}

interface Common {
  title: string;
  /** Shown on the panel's (i): what it shows and why it matters, for whoever is on call. */
  description: string;
  queries: Query[];
  w: number;
  h?: number;
}

function targets(queries: Query[], instant = false): DataqueryBuilder[] {
  return queries.map((q, i) => {
    const t = new DataqueryBuilder()
      .datasource(DATASOURCE)
      .refId(String.fromCharCode(65 + i))
      .expr(q.expr)
      .legendFormat(q.legend);
    return instant ? t.instant() : t.range();
  });
}

/** Value → text and colour, for gauges that encode a state (leader, breaker). */
export function states(byValue: Record<number, { text: string; color: string }>): dashboard.ValueMapping[] {
  const options: Record<string, dashboard.ValueMappingResult> = {};
  for (const [i, [value, r]] of Object.entries(byValue).entries()) options[value] = { ...r, index: i };
  return [{ type: dashboard.MappingType.ValueToText, options }];
}

export function timeSeries(
  o: Common & {
    unit: string;
    /** Counts of rare events read better as bars than as a line through zeros. */
    style?: "line" | "bars" | "points";
    /** A minimum step, e.g. "1h" for "per hour" panels: `$__rate_interval` follows it. */
    interval?: string;
  },
): timeseries.PanelBuilder {
  const p = new timeseries.PanelBuilder()
    .title(o.title)
    .description(o.description)
    .datasource(DATASOURCE)
    .targets(targets(o.queries))
    .unit(o.unit)
    .min(0)
    .span(o.w)
    .height(o.h ?? 8)
    .legend(
      new common.VizLegendOptionsBuilder()
        .showLegend(true)
        .displayMode(common.LegendDisplayMode.List)
        .placement(common.LegendPlacement.Bottom),
    )
    .tooltip(
      new common.VizTooltipOptionsBuilder()
        .mode(common.TooltipDisplayMode.Multi)
        .sort(common.SortOrder.Descending),
    );
  if (o.interval) p.interval(o.interval);
  if (o.style === "bars")
    p.drawStyle(common.GraphDrawStyle.Bars)
      .fillOpacity(80)
      .stacking(new common.StackingConfigBuilder().mode(common.StackingMode.Normal))
      .decimals(0);
  else if (o.style === "points") p.drawStyle(common.GraphDrawStyle.Points).pointSize(8);
  else p.fillOpacity(10).showPoints(common.VisibilityMode.Never);
  return p;
}

export function stateTimeline(
  o: Common & { mappings: dashboard.ValueMapping[] },
): statetimeline.PanelBuilder {
  return new statetimeline.PanelBuilder()
    .title(o.title)
    .description(o.description)
    .datasource(DATASOURCE)
    .targets(targets(o.queries))
    .mappings(o.mappings)
    .showValue(common.VisibilityMode.Never)
    .mergeValues(true)
    .fillOpacity(80)
    .span(o.w)
    .height(o.h ?? 6)
    .legend(new common.VizLegendOptionsBuilder().showLegend(false));
}

export function statPanel(
  o: Common & {
    /** "name" shows the series' legend (which pod), "value" the number. */
    show: "name" | "value";
    thresholds?: dashboard.Threshold[];
    noValue?: string;
  },
): stat.PanelBuilder {
  const p = new stat.PanelBuilder()
    .title(o.title)
    .description(o.description)
    .datasource(DATASOURCE)
    .targets(targets(o.queries, true))
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(["lastNotNull"]).values(false))
    .textMode(o.show === "name" ? common.BigValueTextMode.Name : common.BigValueTextMode.Value)
    .graphMode(common.BigValueGraphMode.None)
    .colorMode(common.BigValueColorMode.Background)
    .decimals(0)
    .span(o.w)
    .height(o.h ?? 6);
  if (o.thresholds)
    p.thresholds(
      new dashboard.ThresholdsConfigBuilder().mode(dashboard.ThresholdsMode.Absolute).steps(o.thresholds),
    );
  if (o.noValue) p.noValue(o.noValue);
  return p;
}
