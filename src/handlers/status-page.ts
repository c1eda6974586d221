// The status page's HTML: one self-contained document (inline CSS and script, no external asset,
// no build step). The script listens to `?events` (server-sent events, one snapshot a second —
// the same object `?json` gives) and redraws; a member's buttons POST a balancer-manager form
// (b, w, w_status_*, nonce) with fetch and the next snapshot shows the change. Under `wsgate -w N`
// the snapshot has `workers`: the page then lists them, and which worker holds each tunnel.

export const STATUS_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wsgate status</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.1em;margin:1.2em 0 .4em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.3em 0;background:#fff}
th,td{border:1px solid #ddd;padding:.2em .5em;text-align:left;white-space:nowrap}
th{background:#eee}td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#070}.bad{color:#b00}.warn{color:#a60}.muted{color:#777}
#live{display:inline-block;width:.7em;height:.7em;border-radius:50%;background:#bbb;margin-right:.4em}
#live.on{background:#2a2}button{font-size:.85em;margin-right:.2em}
.summary span{margin-right:1.5em}
</style></head><body>
<h1><span id="live"></span>wsgate status</h1>
<div class="summary" id="summary">connecting…</div>
<div id="workerpart" hidden><h2>Workers <span class="muted" id="workercount"></span></h2><div id="workers"></div></div>
<h2>Listeners</h2><div id="listeners"></div>
<h2>Routes</h2><div id="routes"></div>
<h2>Balancers</h2><div id="balancers"></div>
<h2>Backends (plain routes)</h2><div id="backends"></div>
<h2>Open tunnels <span class="muted" id="tunnelcount"></span></h2><div id="tunnels"></div>
<h2>Recent errors</h2><div id="errors"></div>
<p class="muted" id="message"></p>
<script>
"use strict";
var last = null;
function esc(v){return String(v).replace(/[&<>"']/g,function(c){return "&#"+c.charCodeAt(0)+";";});}
function bytes(n){if(n<1024)return n+" B";var u=["KiB","MiB","GiB","TiB"],i=-1;do{n/=1024;i++;}while(n>=1024&&i<3);return n.toFixed(1)+" "+u[i];}
function age(ms){var s=Math.floor(ms/1000);if(s<60)return s+" s";var m=Math.floor(s/60);if(m<60)return m+" min "+(s%60)+" s";var h=Math.floor(m/60);return h+" h "+(m%60)+" min";}
function time(t){return t?new Date(t).toLocaleTimeString():"";}
function table(head,rows){if(rows.length===0)return '<p class="muted">none</p>';
  return "<table><tr>"+head.map(function(h){return "<th>"+esc(h)+"</th>";}).join("")+"</tr>"+rows.join("")+"</table>";}
function stateClass(s){return s==="ok"?"ok":(s==="hot_standby"||s==="spare"||s==="draining")?"warn":"bad";}
function perWorker(m){return m.byWorker?' title="'+esc(m.byWorker.map(function(w){return "pid "+w.pid+": "+w.openTunnels+" tunnels, "+w.state;}).join("; "))+'"':"";}
function member(b,m){
  var h=m.health?(m.health.lastAt?time(m.health.lastAt)+" "+(m.health.error?'<span class="bad">'+esc(m.health.error)+"</span>":'<span class="ok">passed</span>'):"not yet")+" ("+esc(m.health.method)+")":'<span class="muted">no check</span>';
  var w=' data-balancer="'+esc(b.name)+'" data-member="'+esc(m.url)+'"';
  var ctl='<button data-action="enable"'+w+'>Enable</button><button data-action="disable"'+w+'>Disable</button>'+
    '<button data-action="drain"'+w+'>Drain</button><button data-action="standby"'+w+'>'+(m.flags.hotStandby?"Standby off":"Hot standby")+"</button>";
  return '<tr data-member-row="'+esc(m.url)+'"><td>'+esc(m.url)+"</td><td>"+esc(m.route)+'</td><td class="n">'+m.loadFactor+'</td><td class="n">'+m.lbset+
    '</td><td class="'+stateClass(m.state)+'" data-state>'+esc(m.state)+(m.changed?" *":"")+'</td><td class="n"'+perWorker(m)+">"+m.openTunnels+'</td><td class="n">'+m.busy+
    '</td><td class="n">'+m.requests+'</td><td class="n">'+bytes(m.bytesUp)+'</td><td class="n">'+bytes(m.bytesDown)+'</td><td class="n">'+m.errors+
    "</td><td>"+(m.errorUntil?'<span class="bad">until '+time(m.errorUntil)+"</span>":"")+"</td><td>"+h+"</td><td>"+ctl+"</td></tr>";
}
function render(s){
  last=s;
  document.getElementById("summary").innerHTML="<span>pid "+s.pid+(s.workers?" (answering, of "+s.workersRunning+" workers)":"")+"</span><span>"+esc(s.state)+"</span><span>up "+age(s.now-s.startedAt)+
    "</span><span>connections <b>"+s.connections+"</b></span><span>open tunnels <b id=\\"opencount\\">"+s.openTunnels+
    "</b></span><span>handshakes/s <b>"+s.handshakesPerSecond.toFixed(1)+"</b></span><span>handshakes "+s.totals.handshakes+" ("+s.totals.handshakesFailed+
    " not upgraded)</span><span>requests "+s.totals.requests+"</span><span class=\\"muted\\">"+time(s.now)+"</span>";
  var many=!!s.workers;
  document.getElementById("workerpart").hidden=!many;
  if(many){
    document.getElementById("workercount").textContent=s.workers.length<s.workersRunning?"("+s.workers.length+" of "+s.workersRunning+" answered)":"";
    document.getElementById("workers").innerHTML=table(["pid","state","up","connections","open tunnels","handshakes/s"],s.workers.map(function(w){
      return '<tr data-worker="'+w.pid+'"><td>'+w.pid+"</td><td>"+esc(w.state)+'</td><td class="n">'+age(s.now-w.startedAt)+'</td><td class="n">'+w.connections+'</td><td class="n">'+w.openTunnels+'</td><td class="n">'+w.handshakesPerSecond.toFixed(1)+"</td></tr>";}));
  }
  function wk(x){return many?"<td>"+x.worker+"</td>":"";}
  document.getElementById("listeners").innerHTML=table(["address"],s.listeners.map(function(l){return "<tr><td>"+esc(l)+"</td></tr>";}));
  document.getElementById("routes").innerHTML=table(["defined at","server","path","target","open tunnels"],s.routes.map(function(r){
    return "<tr><td>"+esc(r.source)+"</td><td>"+esc(r.vhost)+"</td><td>"+esc(r.path)+"</td><td>"+esc(r.target)+'</td><td class="n">'+r.openTunnels+"</td></tr>";}));
  document.getElementById("balancers").innerHTML=s.balancers.length===0?'<p class="muted">none</p>':s.balancers.map(function(b){
    return "<h3>"+esc(b.url)+' <span class="muted">'+esc(b.method)+"</span></h3>"+table(["member","route","lf","set","state","tunnels","busy","requests","up","down","errors","error state","last health check",""],b.members.map(function(m){return member(b,m);}));}).join("");
  document.getElementById("backends").innerHTML=table(["origin","busy","requests","tunnels","up","down","errors"],s.backends.map(function(o){
    return "<tr><td>"+esc(o.origin)+'</td><td class="n">'+o.busy+'</td><td class="n">'+o.requests+'</td><td class="n">'+o.tunnels+'</td><td class="n">'+bytes(o.bytesUp)+'</td><td class="n">'+bytes(o.bytesDown)+'</td><td class="n">'+o.errors+"</td></tr>";}));
  document.getElementById("tunnelcount").textContent=s.openTunnels>s.tunnels.length?"(newest "+s.tunnels.length+" of "+s.openTunnels+")":"";
  document.getElementById("tunnels").innerHTML=table((many?["worker"]:[]).concat(["id","age","client","via","route","backend","up","down"]),s.tunnels.map(function(t){
    return '<tr data-tunnel="'+t.id+'">'+wk(t)+"<td>"+t.id+'</td><td class="n">'+age(t.ageMs)+"</td><td>"+esc(t.client)+"</td><td>"+esc(t.protocol+" "+t.upgrade)+"</td><td>"+esc(t.route)+"</td><td>"+esc(t.backend)+'</td><td class="n">'+bytes(t.bytesUp)+'</td><td class="n">'+bytes(t.bytesDown)+"</td></tr>";}));
  document.getElementById("errors").innerHTML=table((many?["worker"]:[]).concat(["time","kind","status","client","route","backend","reason"]),s.errors.map(function(e){
    return "<tr>"+wk(e)+"<td>"+time(e.at)+'</td><td class="bad">'+esc(e.kind)+"</td><td>"+(e.status||"")+"</td><td>"+esc(e.client)+"</td><td>"+esc(e.route||"")+"</td><td>"+esc(e.backend||"")+"</td><td>"+esc(e.reason)+"</td></tr>";}));
}
function change(btn){
  if(!last)return;
  var b=btn.getAttribute("data-balancer"),w=btn.getAttribute("data-member"),a=btn.getAttribute("data-action");
  var f=new URLSearchParams();f.set("b",b);f.set("w",w);f.set("nonce",last.nonce);
  if(a==="enable"){f.set("w_status_D","0");f.set("w_status_N","0");f.set("w_status_S","0");}
  else if(a==="disable")f.set("w_status_D","1");
  else if(a==="drain")f.set("w_status_N","1");
  else if(a==="standby"){var on=btn.textContent==="Hot standby";f.set("w_status_H",on?"1":"0");}
  fetch(location.pathname,{method:"POST",headers:{"Content-Type":"application/x-www-form-urlencoded",Accept:"application/json"},body:f.toString()})
    .then(function(r){return r.json();}).then(function(j){document.getElementById("message").textContent=j.ok?"changed "+w+": "+j.state:"refused: "+j.error;})
    .catch(function(e){document.getElementById("message").textContent="failed: "+e;});
}
document.addEventListener("click",function(e){var t=e.target;if(t&&t.getAttribute&&t.getAttribute("data-action"))change(t);});
function start(){
  var live=document.getElementById("live");
  if(typeof EventSource==="function"){
    var es=new EventSource(location.pathname+"?events");
    es.onmessage=function(m){live.className="on";render(JSON.parse(m.data));};
    es.onerror=function(){live.className="";};
  }else{
    (function poll(){fetch(location.pathname+"?json").then(function(r){return r.json();}).then(function(s){live.className="on";render(s);})
      .catch(function(){live.className="";}).then(function(){setTimeout(poll,1000);});})();
  }
}
start();
</script></body></html>
`;
