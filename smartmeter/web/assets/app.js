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
var NAV=[['/','Home'],['/usage','Usage'],['/files','Files'],['/settings','Settings']];
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
 var pf=r.derived.power_factor;$('pf').textContent=pf!==undefined?'power factor '+pf:'';
 var has=function(c){return v['1-0:'+c]!==undefined&&v['1-0:'+c]!==null};
 var ui=['32','52','72','31','51','71'].some(function(c){return has(c+'.7.0')});
 $('phase_card').hidden=!ui;$('no_phases').hidden=ui;
 var reg=function(c){return has(c+'.8.0')?v['1-0:'+c+'.8.0']:has(c+'.8.2')?undefined:v['1-0:'+c+'.8.1']};
 var ri=reg('3'),ro=reg('4');$('r_row').hidden=ri===undefined&&ro===undefined;
 $('r_in').textContent=ri===undefined?'-':fmt(ri/1000,3);$('r_out').textContent=ro===undefined?'-':fmt(ro/1000,3);
 $('q_card').hidden=!has('3.7.0')&&!has('4.7.0');
 $('q_in').textContent=fmt(v['1-0:3.7.0'],0);$('q_out').textContent=fmt(v['1-0:4.7.0'],0)})}
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
  var l=s.line||{};$('sys').innerHTML='up '+dur(s.uptime_s)+'<br>version '+esc(s.version)+
   '<br>meter line '+esc(l.setting||'-')+(l.state=='searching'?' (searching line settings)':'')+
   (l.link_frames?' &middot; '+(l.tx?'E5 answers on':'no TX line'):'');
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
  bytes(s.sd.free)+', used '+bytes(s.sd.used)+', total '+bytes(s.sd.total)+(s.sd.upload_deleted?
  '. Upload '+s.sd.upload_deleted+' deleted to keep logging'+(s.sd.uploads_deleted>1?' ('+s.sd.uploads_deleted+
  ' in all)':''):'')}).catch(function(){});
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
// -- usage: energy per hour/day/month with cost (/api/usage), bars drawn here as SVG --
function kwh(wh,d){return wh===null||wh===undefined?'-':(wh/1000).toFixed(d)}
function eur(ct){return ct===null||ct===undefined?null:(ct/100).toFixed(2)}
function net(r){if(r.cost_ct===undefined||r.cost_ct===null)return null;
 return r.cost_ct+(r.grid_ct||0)-(r.credit_ct||0)+(r.fee_ct||0)}
function parts(r){return r.grid_ct===undefined||r.grid_ct===null||r.cost_ct===null?'':
 ' (energy '+eur(r.cost_ct)+' + grid '+eur(r.grid_ct)+')'}
function hm(iso){return iso.slice(11,16)}
function kw(w){return w===null||w===undefined?'-':(w/1000).toFixed(2)}
function outlook(o){if(!o)return;var c=o.cheapest||[],h='';
 c.forEach(function(w){h+='<tr><td>'+w.hours+' h</td><td>from '+esc(w.start_local.slice(5,10)+' '+hm(w.start_local))+
  '</td><td>'+w.avg_ct_kwh.toFixed(2)+' ct/kWh</td></tr>'});
 $('o_cheap').innerHTML=h;$('m_cheap').textContent=c.length?'average price of the window, energy'+
  (o.grid_fee?' + grid fee':''):'no prices for the next hours';
 var p=o.peaks||{},t=p.top||[];$('s_peak').textContent=t.length?kw(t[0].w):'-';
 $('m_peak').textContent=t.map(function(x,i){return (i+1)+'. '+kw(x.w)+' kW '+x.start_local.slice(5,10)+' '+
  hm(x.start_local)}).join(' \u00b7 ')||'no quarter hour yet this month';
 var q=$('q_now');if(p.quarter_projected_w===null||p.quarter_projected_w===undefined){q.textContent='';return}
 q.textContent='this quarter hour: '+(p.quarter_running_w===null?'':kw(p.quarter_running_w)+
  ' kW so far, ')+'heading for '+kw(p.quarter_projected_w)+' kW';q.className=t.length&&p.quarter_projected_w>t[0].w?'warn':''}
function ct(v){return v===null||v===undefined?'-':v.toFixed(2)+' ct'}
function rowText(r,d){var q=r.date!==undefined,lb=q?r.date.slice(0,5)+' '+r.label+'-'+r.to:r.label,
 pr=q?' \u00b7 price '+ct(r.price_ct_kwh)+(r.feed_in_ct_kwh!==null&&r.feed_in_ct_kwh!==undefined?
  ', feed-in '+ct(r.feed_in_ct_kwh):'')+(r.grid_fee_ct_kwh!==undefined?', grid fee '+ct(r.grid_fee_ct_kwh):''):'';
 if(r.import_wh===null)return lb+(r.future?': to come':': no data')+pr;var c=eur(net(r));
 return lb+(r.gap||r.meter_change?' *':'')+': import '+kwh(r.import_wh,d)+' kWh, export '+
  kwh(r.export_wh,d)+' kWh'+(c!==null?', cost '+c+' EUR'+parts(r)+(r.fee_ct?' (incl. base fee)':''):'')+pr+
  (r.meter_change?' - meter changed':r.gap?' - data missing in part':'')+(r.partial?' - partial':'')}
function bars(el,tip,rows,d,prices){var W=1000,H=240,L=44,R=prices?46:0,B=22,n=rows.length,
 w=(W-L-R)/n,hi=0,s='';
 rows.forEach(function(r){hi=Math.max(hi,r.import_wh||0,r.export_wh||0)});if(!hi)hi=1000;
 var y=function(v){return H-B-v/hi*(H-B-10)},bw=Math.max(1,w*0.38);
 s+='<line x1="'+L+'" x2="'+W+'" y1="'+(H-B)+'" y2="'+(H-B)+'" stroke="#999"/>';
 s+='<text x="0" y="16" font-size="12">'+kwh(hi,d)+'</text><text x="0" y="'+(H-B)+'" font-size="12">0</text>';
 s+='<text x="0" y="30" font-size="11" fill="#777">kWh</text>';
 var every=Math.ceil(n/12);rows.forEach(function(r,i){var x=L+i*w;
  if(r.import_wh===null){if(!r.future)s+='<rect x="'+(x+w*0.1)+'" y="10" width="'+(w*0.8)+
   '" height="'+(H-B-10)+'" fill="#ccc" opacity="0.5"/>'}else{
   s+='<rect x="'+(x+w*0.1)+'" y="'+y(r.import_wh)+'" width="'+bw+'" height="'+(H-B-y(r.import_wh))+
    '" fill="#1f4e79"'+(r.gap||r.partial?' opacity="0.55"':'')+'/>';
   s+='<rect x="'+(x+w*0.1+bw)+'" y="'+y(r.export_wh)+'" width="'+bw+'" height="'+(H-B-y(r.export_wh))+
    '" fill="#e08a00"'+(r.gap||r.partial?' opacity="0.55"':'')+'/>';
   if(r.gap||r.meter_change)s+='<text x="'+(x+w/2)+'" y="'+(y(Math.max(r.import_wh,r.export_wh))-3)+
    '" font-size="13" text-anchor="middle">*</text>'}
  if(prices?r.label=='00:00'||(r.label.slice(3)=='00'&&+r.label.slice(0,2)%6==0):i%every==0||i==n-1)
   s+='<text x="'+(x+(prices?0:w/2))+'" y="'+(H-6)+'" font-size="11" text-anchor="'+(prices?'start':
    'middle')+'">'+esc(prices&&r.label=='00:00'?r.date.slice(0,5):r.label.slice(r.label.length>7?5:0))+
    '</text>';
  s+='<rect class="hit" data-i="'+i+'" x="'+x+'" y="0" width="'+w+'" height="'+H+'"><title>'+
   esc(rowText(r,d))+'</title></rect>'});
 if(prices)s+=priceLines(rows,L,w,W,R,H,B);
 el.innerHTML='<svg viewBox="0 0 '+W+' '+H+'" preserveAspectRatio="none">'+s+'</svg>';
 function show(ev){var t=ev.target;if(!t.classList||!t.classList.contains('hit'))return;
  Array.prototype.forEach.call(el.querySelectorAll('.hit.sel'),function(e){e.classList.remove('sel')});
  t.classList.add('sel');tip.textContent=rowText(rows[+t.dataset.i],d)}
 el.onmouseover=show;el.onclick=show}
// the price of each quarter as steps over the bars, its own scale on the right (ct/kWh)
function priceLines(rows,L,w,W,R,H,B){var lo=0,hi=0,s='',keys=[['price_ct_kwh','#c0392b']];
 if(rows.some(function(r){return r.feed_in_dynamic}))keys.push(['feed_in_ct_kwh','#2e8b57']);
 keys.forEach(function(k){rows.forEach(function(r){var v=r[k[0]];if(v!==null&&v!==undefined){
  lo=Math.min(lo,v);hi=Math.max(hi,v)}})});if(hi<=lo)hi=lo+1;
 var y=function(v){return H-B-(v-lo)/(hi-lo)*(H-B-10)};
 keys.forEach(function(k){var p='',pen=false;rows.forEach(function(r,i){var v=r[k[0]],x=L+i*w;
  if(v===null||v===undefined){pen=false;return}
  p+=(pen?'L':'M')+x.toFixed(1)+' '+y(v).toFixed(1)+'L'+(x+w).toFixed(1)+' '+y(v).toFixed(1);pen=true});
  if(p)s+='<path d="'+p+'" fill="none" stroke="'+k[1]+'" stroke-width="2"/>'});
 if(lo<0)s+='<line x1="'+L+'" x2="'+(W-R)+'" y1="'+y(0)+'" y2="'+y(0)+'" stroke="#c0392b" '+
  'stroke-dasharray="3 3" opacity="0.5"/>';
 s+='<text x="'+(W-R+4)+'" y="16" font-size="12" fill="#c0392b">'+hi.toFixed(1)+'</text>';
 s+='<text x="'+(W-R+4)+'" y="'+(H-B)+'" font-size="12" fill="#c0392b">'+lo.toFixed(1)+'</text>';
 s+='<text x="'+(W-R+4)+'" y="30" font-size="11" fill="#c0392b">ct/kWh</text>';return s}
function card(id,r,d){if(!r||r.import_wh===null){$('s_'+id).textContent='-';$('m_'+id).textContent='no data';return}
 var c=eur(net(r));$('s_'+id).textContent=kwh(r.import_wh,d)+(r.gap||r.meter_change?' *':'');
 $('m_'+id).textContent='export '+kwh(r.export_wh,d)+' kWh'+(c!==null?' \u00b7 cost '+c+' EUR':'')}
// "feed-in now 6.10 ct (market)": the feed-in price of this or the next quarter hour
function feedIn(t,when){var v=t['feed_in_'+when+'_ct_kwh'];return v===null||v===undefined?'':
 'feed-in '+when+' '+ct(v)+(t.feed_in_dynamic&&t.market_quarters?' (market)':' (fixed)')}
function usage(){status().catch(function(){});
 // one request at a time: the board has few sockets and admits 2 connections per client
 function load(){['quarter','hour','day','month'].reduce(function(p,res){return p.then(function(){
  return get('/api/usage?resolution='+res)}).then(function(u){
  var rows=u.rows,d=res=='hour'||res=='quarter'?2:1;
  bars($('c_'+res),$('t_'+res),rows,res=='quarter'?3:d,res=='quarter');
  if(res=='quarter'){var t=u.tariff||{};$('s_pnext').textContent=ct(t.price_next_ct_kwh);
   $('m_pnext').textContent=feedIn(t,'next')}
  if(res=='day'){card('today',rows[rows.length-1],1);card('yesterday',rows[rows.length-2],1)}
  if(res=='month'){card('month',rows[rows.length-1],1)}
  if(res=='hour'){var t=u.tariff||{},p=t.price_now_ct_kwh;
   $('s_price').textContent=p===null||p===undefined?'-':p.toFixed(2)+' ct';
   $('m_price').textContent=(t.market_quarters?'day-ahead price ('+t.market_quarters+
    ' quarter hours known)':
    (t.price_ct_kwh?'fixed tariff':'no price set'))+(feedIn(t,'now')?' \u00b7 '+
    feedIn(t,'now'):'')+(t.base_fee_ct_month?' \u00b7 base fee '+
    (t.base_fee_ct_month/100).toFixed(2)+' EUR/month':'');
   outlook(u.outlook);var g=u.outlook&&u.outlook.grid_fee;if(g)$('m_price').textContent+=
    ' \u00b7 grid fee now '+(g.now_ct_kwh===null?'-':g.now_ct_kwh.toFixed(2))+' ct/kWh';
   var pr=u.prices;$('u_note').textContent=(pr&&pr.last_error?'prices: '+pr.last_error+'. ':'')+
    (u.meter_changes?'Meter change seen: the jump is not counted. ':'')}
 }).catch(function(e){$('t_'+res).textContent=e.message})},Promise.resolve())}
 load();setInterval(load,60000)}
nav();
({home:home,usage:usage,files:files,settings:settings})[document.body.dataset.page]();
