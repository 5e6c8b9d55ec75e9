/// The dashboard's stylesheet: light, or dark when the browser asks for it. The page's CSP
/// allows exactly this text (by its SHA-256), so the page has no `style` attributes: the script
/// sets classes and, for bar widths, CSSOM properties (which CSP does not govern).
enum DashboardStyle {
    static let css = #"""
:root{--bg:#f3f5f8;--card:#fff;--fg:#1c2230;--muted:#667085;--line:#e4e8ee;--ok:#0f7a55;--okbg:#e1f4ea;
--bad:#b93329;--badbg:#fbe8e6;--warn:#a35a06;--warnbg:#fdf0dc;--idle:#eef0f4;--accent:#2563eb;--accent2:#9333ea;
--mono:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
@media (prefers-color-scheme:dark){:root{--bg:#0e131a;--card:#161d27;--fg:#e5e8ee;--muted:#97a1af;--line:#263142;
--ok:#4ade80;--okbg:#123527;--bad:#f87171;--badbg:#3a1a18;--warn:#fbbf24;--warnbg:#3a2b10;--idle:#222b38;
--accent:#60a5fa;--accent2:#c084fc}}
*{box-sizing:border-box}
html,body{margin:0}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;background:var(--bg);color:var(--fg)}
header{display:flex;flex-wrap:wrap;align-items:center;gap:10px 28px;padding:14px 24px;background:var(--card);border-bottom:1px solid var(--line)}
header h1{font-size:17px;margin:0;font-weight:650;display:flex;align-items:center;gap:10px}
header h1 .logo{width:12px;height:12px;border-radius:50%;background:var(--accent);display:inline-block}
header .meta{display:flex;flex-wrap:wrap;gap:4px 22px;color:var(--muted);min-width:0}
header .meta b{color:var(--fg);font-weight:600;overflow-wrap:anywhere}
header .conn{margin-left:auto}
main{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:16px;padding:16px 24px 28px;max-width:1560px;margin:0 auto}
.span2{grid-column:span 2}
.span3{grid-column:1/-1}
.stack{display:flex;flex-direction:column;gap:16px;min-width:0}
.stack .card:last-child{flex:1}
@media (max-width:1100px){main{grid-template-columns:minmax(0,1fr)}.span2{grid-column:auto}}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px;min-width:0}
.card h2{font-size:12px;text-transform:uppercase;letter-spacing:.07em;color:var(--muted);margin:0 0 10px;font-weight:650;
display:flex;align-items:center;gap:10px}
.card h2 .right{margin-left:auto;text-transform:none;letter-spacing:0;font-weight:500}
body.offline .card{opacity:.55}
.pill{display:inline-block;padding:2px 10px;border-radius:999px;font-weight:600;font-size:12px;white-space:nowrap;background:var(--idle);color:var(--muted)}
.pill.ok{background:var(--okbg);color:var(--ok)}
.pill.bad{background:var(--badbg);color:var(--bad)}
.pill.warn{background:var(--warnbg);color:var(--warn)}
.muted{color:var(--muted)}
.err{color:var(--bad);overflow-wrap:anywhere}
dl.kv{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:3px 16px;margin:0 0 10px}
dl.kv dt{color:var(--muted)}
dl.kv dd{margin:0;overflow-wrap:anywhere}
ul.checks{list-style:none;margin:0;padding:0}
ul.checks li{display:grid;grid-template-columns:14px max-content minmax(0,1fr);gap:8px;align-items:baseline;padding:5px 0;border-top:1px solid var(--line)}
.dot{width:9px;height:9px;border-radius:50%;display:inline-block;background:var(--muted)}
.dot.ok{background:var(--ok)}.dot.bad{background:var(--bad)}.dot.warn{background:var(--warn)}
ul.checks .name{font-weight:600}
ul.checks .detail{color:var(--muted);overflow-wrap:anywhere}
.tablewrap{overflow-x:auto}
table{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums}
th{font-weight:600;color:var(--muted);font-size:12px;text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);white-space:nowrap}
td{padding:6px 8px;border-bottom:1px solid var(--line);white-space:nowrap}
td.num,th.num{text-align:right}
td.fname{font-weight:600;white-space:normal;overflow-wrap:anywhere;min-width:120px}
td.addr{font-family:var(--mono);font-size:12.5px}
.charts{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:16px}
@media (max-width:700px){.charts{grid-template-columns:minmax(0,1fr)}}
.chart .label{display:flex;justify-content:space-between;margin-bottom:4px}
.chart .label b{font-variant-numeric:tabular-nums}
canvas{display:block;width:100%;height:150px}
.stats{display:grid;grid-template-columns:repeat(auto-fill,minmax(130px,1fr));gap:8px;margin-top:14px}
.stat{background:var(--bg);border-radius:8px;padding:7px 10px;min-width:0}
.stat .k{color:var(--muted);font-size:12px}
.stat .v{font-weight:600;font-variant-numeric:tabular-nums;overflow-wrap:anywhere}
ol.timeline{list-style:none;margin:0;padding:0;max-height:360px;overflow-y:auto}
ol.timeline li{display:grid;grid-template-columns:66px 126px minmax(0,1fr);gap:10px;padding:5px 0;border-top:1px solid var(--line);align-items:baseline}
ol.timeline .time{color:var(--muted);font-variant-numeric:tabular-nums;font-size:12.5px}
ol.timeline .what{overflow-wrap:anywhere}
.tag{font-size:11.5px;font-weight:600;padding:1px 8px;border-radius:6px;background:var(--idle);color:var(--muted);justify-self:start}
.tag.ok{background:var(--okbg);color:var(--ok)}.tag.bad{background:var(--badbg);color:var(--bad)}.tag.warn{background:var(--warnbg);color:var(--warn)}
.tag.info{background:var(--idle);color:var(--accent)}
.chips{display:flex;flex-wrap:wrap;gap:6px}
.chip{padding:3px 10px;border-radius:999px;border:1px solid var(--line);font-size:12.5px}
.chip.on{background:var(--okbg);color:var(--ok);border-color:transparent}
.chip.off{color:var(--muted);text-decoration:line-through}
.empty{color:var(--muted);padding:10px 0}
.bars{display:grid;grid-template-columns:max-content minmax(0,1fr) max-content;gap:6px 10px;align-items:center}
.bar{height:8px;border-radius:4px;background:var(--accent);min-width:2px}
footer{color:var(--muted);font-size:12px;text-align:center;padding:0 0 20px}
"""#
}
