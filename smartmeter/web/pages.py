# SPDX-License-Identifier: MIT
# ruff: noqa: E501 - the embedded JS and CSS keep their own line breaks
"""The web pages: three small HTML shells, one stylesheet, one script (no CDN, no inline JS).

The pages fetch everything from the JSON API (docs/web-api.md), so the device only serves
constant strings: ~11 KB in all. Works on a phone (single column) and a desktop (grid).
"""

_NAV = (
    '<header><b id="host">smartmeter</b><nav><a href="/">Home</a><a href="/files">Files</a>'
    '<a href="/settings">Settings</a></nav></header><div id="problems"></div>'
)

_BODIES = {
    "home": """
<section class="grid">
 <div class="card"><h2>Import</h2><p class="big"><span id="p_in">-</span> W</p></div>
 <div class="card"><h2>Export</h2><p class="big"><span id="p_out">-</span> W</p></div>
 <div class="card"><h2>Energy</h2><p>Import <b id="e_in">-</b> kWh</p>
  <p>Export <b id="e_out">-</b> kWh</p></div>
 <div class="card"><h2>Meter time</h2><p id="m_time">-</p><p class="dim" id="m_age"></p></div>
</section>
<section class="card"><h2>Phases</h2><table id="phases"><tr><th></th><th>L1</th><th>L2</th>
<th>L3</th></tr><tr><td>U (V)</td><td id="u1">-</td><td id="u2">-</td><td id="u3">-</td></tr>
<tr><td>I (A)</td><td id="i1">-</td><td id="i2">-</td><td id="i3">-</td></tr></table>
<p class="dim" id="pf"></p></section>
<section class="card"><h2>Power today (W, import +)</h2><div id="chart"></div></section>
<section class="grid">
 <div class="card"><h2>SD card</h2><p id="sd">-</p></div>
 <div class="card"><h2>Network</h2><p id="net">-</p></div>
 <div class="card"><h2>System</h2><p id="sys">-</p></div>
</section>
<section class="card"><details><summary>Counters</summary><table id="counters"></table>
</details><div id="errors"></div></section>""",
    "files": """
<section class="card"><h2>Upload a file to the SD card</h2>
<input type="file" id="upfile"> <button id="upbtn">Upload</button>
<progress id="upprog" max="100" value="0" hidden></progress> <span id="upmsg"></span></section>
<section class="card"><h2>Log files</h2><p id="sdinfo" class="dim"></p>
<table id="files"><tr><td>loading...</td></tr></table></section>""",
    "settings": """
<section class="card"><h2>Settings</h2>
<p class="dim">Saved to the SD card, applied after a reboot. Keys and passwords are never shown:
leave a field empty to keep it.</p>
<form id="settings"></form><p id="savemsg"></p></section>
<section class="card"><h2>Actions</h2><button id="reboot">Reboot</button>
<button id="setupmode">Open setup access point</button>
<a href="/logout" class="btn">Log out</a><p id="actmsg"></p></section>""",
}


def page(name, language="en"):
    """The HTML of page ``name`` ("home", "files", "settings")."""
    return (
        '<!DOCTYPE html><html lang="%s"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<title>Smartmeter</title><link rel="stylesheet" href="/app.css"></head>'
        '<body data-page="%s">%s<main>%s</main><script src="/app.js"></script></body></html>'
        % (language, name, _NAV, _BODIES[name])
    )


CSS = """*{box-sizing:border-box}body{margin:0;font:15px/1.4 system-ui,sans-serif;background:#eef1f4;
color:#222}header{display:flex;flex-wrap:wrap;justify-content:space-between;align-items:center;
background:#1f4e79;color:#fff;padding:.6em 1em}header a{color:#fff;margin-left:1em;text-decoration:none}
main{max-width:1000px;margin:auto;padding:.5em}.grid{display:grid;gap:.5em;
grid-template-columns:repeat(auto-fit,minmax(200px,1fr))}.card{background:#fff;border-radius:6px;
padding:.6em 1em;margin:.5em 0;box-shadow:0 1px 2px #0002}h2{font-size:1em;margin:.2em 0;color:#555}
.big{font-size:2em;margin:.1em 0;font-weight:600}.dim{color:#777;font-size:.9em}
table{border-collapse:collapse;width:100%}td,th{padding:.25em .5em;text-align:right;
border-bottom:1px solid #eee}td:first-child,th:first-child{text-align:left}
#problems div{background:#c62828;color:#fff;padding:.5em 1em;margin:.5em}.month{background:#f5f7fa;
font-weight:600}button,.btn{background:#1f4e79;color:#fff;border:0;border-radius:4px;padding:.4em .8em;
cursor:pointer;text-decoration:none;font-size:.9em}button.danger{background:#c62828}
svg{width:100%;height:220px}label{display:block;margin:.4em 0}label span{display:inline-block;
min-width:14em}input,select{padding:.3em;width:16em;max-width:100%}"""

JS = r"""'use strict';
var $=function(id){return document.getElementById(id)};
function get(url){return fetch(url,{cache:'no-store'}).then(function(r){
 if(!r.ok)throw new Error(r.status+' '+url);return r.json()})}
function post(url,body){return fetch(url,{method:'POST',body:body,headers:{
 'Content-Type':'application/x-www-form-urlencoded'}}).then(function(r){
 return r.text().then(function(t){var j;try{j=JSON.parse(t)}catch(e){j={text:t}}
 j.status=r.status;return j})})}
function fmt(v,d){return v===undefined||v===null?'-':Number(v).toFixed(d)}
function bytes(n){if(n===null||n===undefined)return '-';var u=['B','KB','MB','GB','TB'],i=0;
 while(n>=1024&&i<4){n/=1024;i++}return n.toFixed(i?2:0)+' '+u[i]}
function dur(s){var d=Math.floor(s/86400),h=Math.floor(s%86400/3600),m=Math.floor(s%3600/60);
 return (d?d+'d ':'')+h+'h '+m+'m'}
function esc(t){return String(t).replace(/[&<>"']/g,function(c){return '&#'+c.charCodeAt(0)+';'})}
function status(){return get('/api/status').then(function(s){
 $('host').textContent=s.network.hostname||'smartmeter';
 $('problems').innerHTML=s.problems.map(function(p){return '<div>'+esc(p.text)+'</div>'}).join('');
 return s})}
function now(){return get('/api/now').then(function(n){var r=n.reading;if(!r)return;var v=r.values;
 $('p_in').textContent=fmt(v['1-0:1.7.0'],0);$('p_out').textContent=fmt(v['1-0:2.7.0'],0);
 $('e_in').textContent=fmt(v['1-0:1.8.0']/1000,3);$('e_out').textContent=fmt(v['1-0:2.8.0']/1000,3);
 $('m_time').textContent=r.meter_time||'-';
 $('m_age').textContent=n.age_s!==undefined?n.age_s+' s ago':'';
 ['32','52','72'].forEach(function(c,i){$('u'+(i+1)).textContent=fmt(v['1-0:'+c+'.7.0'],1)});
 ['31','51','71'].forEach(function(c,i){$('i'+(i+1)).textContent=fmt(v['1-0:'+c+'.7.0'],2)});
 var pf=r.derived.power_factor;$('pf').textContent=pf!==undefined?'power factor '+pf:''})}
function chart(){return get('/api/history?minutes=1440').then(function(h){var p=h.points,el=$('chart');
 if(p.length<2){el.innerHTML='<p class="dim">not enough data yet</p>';return}
 var W=1000,H=220,t0=p[0][0],t1=p[p.length-1][0],lo=0,hi=0;
 p.forEach(function(q){lo=Math.min(lo,q[1]);hi=Math.max(hi,q[1])});if(hi==lo)hi=lo+1;
 var x=function(t){return (t-t0)/(t1-t0||1)*(W-50)+45},y=function(w){return H-20-(w-lo)/(hi-lo)*(H-30)};
 var d=p.map(function(q,i){return (i?'L':'M')+x(q[0]).toFixed(1)+' '+y(q[1]).toFixed(1)}).join('');
 var tl=function(t){var D=new Date(t*1000);return ('0'+D.getHours()).slice(-2)+':'+('0'+D.getMinutes()).slice(-2)};
 el.innerHTML='<svg viewBox="0 0 '+W+' '+H+'" preserveAspectRatio="none"><line x1="45" x2="'+W+'" y1="'+y(0)+
 '" y2="'+y(0)+'" stroke="#999"/><path d="'+d+'" fill="none" stroke="#1f4e79" stroke-width="2"/>'+
 '<text x="0" y="14" font-size="12">'+hi+'</text><text x="0" y="'+(H-20)+'" font-size="12">'+lo+'</text>'+
 '<text x="45" y="'+(H-4)+'" font-size="12">'+tl(t0)+'</text><text x="'+(W-40)+'" y="'+(H-4)+
 '" font-size="12">'+tl(t1)+'</text></svg>'})}
function home(){function tick(){now().catch(function(){});status().then(function(s){var sd=s.sd;
  $('sd').innerHTML=esc(sd.state)+'<br>free '+bytes(sd.free)+' &middot; used '+bytes(sd.used)+
   ' &middot; total '+bytes(sd.total);var n=s.network;
  $('net').innerHTML=(n.ap_mode?'setup access point '+esc(n.ap_ssid):(n.connected?'WiFi '+
   esc(n.ssid||'')+'<br>'+esc(n.ip||'')+' &middot; '+n.rssi+' dBm':'not connected'));
  $('sys').innerHTML='up '+dur(s.uptime_s)+'<br>version '+esc(s.version);
  var c=s.counters;$('counters').innerHTML=Object.keys(c).map(function(k){return '<tr><td>'+esc(k)+
   '</td><td>'+c[k]+'</td></tr>'}).join('');var e=s.last_errors;
  $('errors').innerHTML=Object.keys(e).filter(function(k){return e[k]}).map(function(k){
   return '<p class="dim">last '+esc(k)+' error: '+esc(e[k])+'</p>'}).join('')}).catch(function(){})}
 tick();chart().catch(function(){});setInterval(tick,3000);setInterval(function(){chart().catch(function(){})},60000)}
function listFiles(){status().then(function(s){$('sdinfo').textContent='SD card '+s.sd.state+': free '+
  bytes(s.sd.free)+', used '+bytes(s.sd.used)+', total '+bytes(s.sd.total)}).catch(function(){});
 get('/api/files').then(function(f){var groups={},order=[],other=[];f.files.forEach(function(x){
  var m=/^\d{4}-\d{2}-\d{2}/.test(x.name)?x.name.slice(0,7):null;if(!m){other.push(x);return}
  if(!groups[m]){groups[m]=[];order.push(m)}groups[m].push(x)});var h='';
  function row(x){return '<tr><td><a href="/logs/'+esc(x.name)+'" download>'+esc(x.name)+'</a></td><td>'+
   bytes(x.size)+'</td><td><button class="danger del" data-name="'+esc(x.name)+'">Delete</button></td></tr>'}
  order.forEach(function(m){var t=groups[m].reduce(function(a,x){return a+x.size},0);
   h+='<tr class="month"><td>'+m+'</td><td>'+bytes(t)+'</td><td><a class="btn" href="/month/'+m+
   '.csv" download>Download month</a></td></tr>'+groups[m].map(row).join('')});
  if(other.length)h+='<tr class="month"><td colspan="3">Other files</td></tr>'+other.map(row).join('');
  $('files').innerHTML=h||'<tr><td>no files</td></tr>'}).catch(function(e){
  $('files').innerHTML='<tr><td>'+esc(e.message)+'</td></tr>'})}
function files(){listFiles();
 $('files').addEventListener('click',function(ev){var b=ev.target;if(!b.classList.contains('del'))return;
  if(!b.dataset.armed){b.dataset.armed=1;b.textContent='Really delete?';return}
  post('/delete','name='+encodeURIComponent(b.dataset.name)).then(function(){listFiles()})});
 $('upbtn').onclick=function(){var f=$('upfile').files[0];if(!f)return;var x=new XMLHttpRequest();
  x.open('POST','/upload?name='+encodeURIComponent(f.name));$('upprog').hidden=false;
  x.upload.onprogress=function(e){if(e.lengthComputable)$('upprog').value=e.loaded/e.total*100};
  x.onload=function(){$('upmsg').textContent=x.status==201?'uploaded':'failed: '+x.responseText;listFiles()};
  x.onerror=function(){$('upmsg').textContent='upload failed'};x.send(f)}}
function settings(){get('/api/settings').then(function(s){var h='';s.editable.forEach(function(k){
  var v=s.values[k],sec=s.secrets.indexOf(k)>=0,ch=s.choices[k],inp;
  if(ch)inp='<select name="'+k+'">'+ch.map(function(c){return '<option'+(c==v?' selected':'')+'>'+c+
   '</option>'}).join('')+'</select>';
  else if(k=='MQTT_TLS')inp='<input type="checkbox" name="'+k+'"'+(v?' checked':'')+
   '><input type="hidden" name="MQTT_TLS_present" value="1">';
  else if(sec)inp='<input type="password" autocomplete="new-password" name="'+k+'" placeholder="'+
   (v?'(set - empty keeps it)':'(not set)')+'">';
  else inp='<input name="'+k+'" value="'+esc(v===null?'':v)+'">';
  h+='<label><span>'+k+'</span>'+inp+'</label>'});
  $('settings').innerHTML=h+'<button type="submit">Save</button>'});
 $('settings').onsubmit=function(ev){ev.preventDefault();
  post('/settings',new URLSearchParams(new FormData($('settings'))).toString()).then(function(r){
   $('savemsg').textContent=r.saved?'Saved. Reboot to apply.':'Not saved: '+(r.problems||[r.text]).join('; ')})};
 $('reboot').onclick=function(){if(confirm('Reboot the board?'))post('/reboot','').then(function(){
  $('actmsg').textContent='Rebooting...';setTimeout(function(){location.href='/'},20000)})};
 $('setupmode').onclick=function(){post('/setup','').then(function(){$('actmsg').textContent=
  'Setup access point opening (see the display)'})}}
({home:home,files:files,settings:settings})[document.body.dataset.page]();
"""
