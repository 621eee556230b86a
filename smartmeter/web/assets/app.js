// SPDX-License-Identifier: MIT
// The script of every page: fetches the JSON API (docs/web-api.md), draws with SVG, no libraries.
'use strict';
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
// The navigation of every page (one list: a new page adds its entry here)
var NAV=[['/','Home'],['/files','Files'],['/settings','Settings']];
function nav(){$('nav').innerHTML=NAV.map(function(n){return '<a href="'+n[0]+'">'+n[1]+'</a>'}).join('')}
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
  var o=s.sinks||{};$('outputs').innerHTML=Object.keys(o).map(function(k){var x=o[k];
   return '<p><b>'+esc(k)+'</b> '+esc(x.state)+' &middot; sent '+x.sent+' &middot; failed '+
   x.failed+' &middot; queued '+x.queued+' &middot; dropped '+x.dropped+
   (x.error?'<br><span class="dim">'+esc(x.error)+'</span>':'')+'</p>'}).join('')||'none configured';
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
nav();
({home:home,files:files,settings:settings})[document.body.dataset.page]();
