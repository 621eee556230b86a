# SPDX-License-Identifier: MIT
"""Home Assistant over MQTT: one JSON state message per reading, discovery, availability.

Topics (``<base>`` = ``MQTT_BASE_TOPIC/<meter number>``, e.g. ``smartmeter/181220002177``):

- ``<base>/state``  JSON, not retained: energies in kWh/kvarh with exactly 3 decimals made from
  the meter's integer Wh (device floats are single precision: 31358.606 kWh would lose the Wh),
  power in W/var, voltage V, current A, power factor, plus ``time`` (meter time) and ``ts`` (UTC).
- ``<base>/status`` ``online`` / ``offline`` (retained; ``offline`` is the last will).
- ``<prefix>/sensor/smartmeter_<meter>/<entity>/config`` one retained discovery config per value
  the meter actually sends (an L1-only meter gets no L2/L3 entities).

Never blocks the meter: the client (``mqttclient``, ours: every wait has a deadline counted by our
clock, whatever the broker sends) connects only in ``poll()``, one attempt per due time, backoff
1 s doubling to 60 s; the only blocking step is the TCP connect (0.5 s, TLS 3 s); CONNACK is
awaited across passes without blocking; one discovery message or a few states per pass, a
bounded drop-oldest queue.
"""

from ..netutil import EAGAIN_CODES, ECONNREFUSED, ECONNRESET
from ..protocol.reading import BACK_WH, DEVICE_NAME, P_MINUS, P_PLUS, energy_register
from ..timeutil import Backoff, ticks_diff
from .hass import (
    KIND,
    OID,
    config_payload,
    config_topic,
    device_info,
    entity,
    known_object_ids,
    value_text,
)
from .mqttclient import UP, MqttClient

try:
    from micropython import const
except ImportError:  # CPython

    def const(x):
        return x


_QUEUE_MAX = const(4)  # states kept while the broker is away; older ones carry HA wrong times
_STATES_PER_POLL = const(2)
_SWEEP_AFTER = const(12)  # readings after connecting before unsent entities' configs are cleared
_STALE_READINGS = const(120)  # an announced value missing this many readings: its config goes
_BACKOFF_MIN_MS = const(1000)
_BACKOFF_MAX_MS = const(60_000)
_KEEP_ALIVE_S = const(60)  # PINGREQ every 30 s; no PINGRESP within 10 s drops the link
_CONNECT_TIMEOUT_S = 0.5  # TCP connect; loopback/LAN answers in ms, a dead host costs this much


def _clean(text):
    """Topic/id-safe text: letters, digits, '_' and '-' only."""
    return "".join(ch if ch.isalpha() or ch.isdigit() or ch in "_-" else "_" for ch in text)


NAME = "mqtt"
PROBLEMS = (
    (
        "mqtt_auth",
        ("auth",),
        {
            "en": ("MQTT login refused", "Check MQTT_USER/PASSWORD"),
            "de": ("MQTT-Login abgelehnt", "MQTT_USER/PASSWORD pruefen"),
        },
    ),
    (
        "mqtt",
        ("error",),
        {
            "en": ("MQTT unreachable", "Check MQTT_HOST"),
            "de": ("MQTT nicht erreichbar", "MQTT_HOST pruefen"),
        },
    ),
)


class MqttSink:
    """The MQTT sink. ``on_reading`` queues (fast); ``poll`` does the network work in small steps.

    :param config: Config (MQTT_* settings, HOSTNAME)
    :param pool: socket pool (``socketpool.SocketPool`` on the board, the ``socket`` module on a PC)
    :param state: State; this output registers ``state.sinks["mqtt"]`` and keeps it current
    :param clock: the app's clock (``ticks_ms()``)
    :param ssl_context: for MQTT_TLS (default: ``ssl.create_default_context()``)
    """

    name = NAME

    def __init__(self, config, pool, state, clock, ssl_context=None):
        self.config = config
        self.pool = pool
        self.state = state
        self._ticks_ms = clock.ticks_ms
        self.ssl_context = ssl_context
        self.enabled = bool(config.MQTT_HOST) and pool is not None
        self.sent = self.failed = self.dropped = self.connects = 0
        self._queue = []
        self._client = None
        self._addr = None  # cached getaddrinfo entry of MQTT_HOST
        self._backoff = Backoff(_BACKOFF_MIN_MS, _BACKOFF_MAX_MS)
        self._up_since = 0
        self._last_epoch = self._last_ticks = None
        self._node = None  # "smartmeter_<meter>", set by the first reading
        self._base = None
        self._device = None
        self._entities = {}  # source key -> entity tuple (or None)
        self._pending = []  # source keys whose discovery config is still to be sent
        # Retained configs of entities this meter does not send are cleared (empty retained
        # payload): once per connection after _SWEEP_AFTER readings, and for an entity whose
        # value has not come for _STALE_READINGS readings.
        self._seen = {}  # source key -> reading number it last came in
        self._energy = {}  # energy register -> last value sent (see _held_back)
        self.held_back = 0  # register values not sent: a little below the last one
        self._readings = 0
        self._sweep = None  # generator of object ids to check, while a sweep runs
        self._sweep_at = None  # reading number at which the next sweep starts
        self._removals = []  # object ids whose retained config is to be cleared
        self.removed = 0  # configs cleared
        self.status = state.add_sink(NAME, PROBLEMS)
        self.status.state = "pending" if self.enabled else "disabled"

    @property
    def queued(self):
        """State messages waiting for the broker."""
        return len(self._queue)

    @property
    def connected(self):
        return self._client is not None and self._client.state == UP

    # -- readings (fast path) ----------------------------------------------------------------
    def on_reading(self, reading, epoch_utc, extras):
        """Build this reading's state message and queue it (drop-oldest when full)."""
        if not self.enabled:
            return
        interval = self.config.MQTT_INTERVAL_S
        now = self._ticks_ms()
        if interval and self._last_ticks is not None:
            if epoch_utc is not None and self._last_epoch is not None:
                if epoch_utc - self._last_epoch < interval:
                    return
            elif ticks_diff(now, self._last_ticks) < interval * 1000 - 500:
                return
        self._last_epoch = epoch_utc
        self._last_ticks = now
        self._identify(reading)
        parts = []
        t = reading.iso_time()
        if t:
            parts.append('"time":"%s"' % t)
        if epoch_utc is not None:
            parts.append('"ts":%d' % epoch_utc)
        values = reading.values
        self._add(parts, values, self._held_back(values))
        if P_PLUS in values and P_MINUS in values:
            self._add_one(parts, "_net", values[P_PLUS] - values[P_MINUS])
        self._add(parts, reading.derived)
        if extras:
            self._add(parts, extras)
        ahead = self.state.ahead  # cheapest windows, peaks (datalog/outlook.py)
        if ahead:
            self._add(parts, ahead)
        self._readings += 1
        if self._readings % _SWEEP_AFTER == 0:
            self._expire()
        if len(self._queue) >= _QUEUE_MAX:
            self._queue.pop(0)
            self.dropped += 1
        self._queue.append("{" + ",".join(parts) + "}")
        self._sync()

    def _add(self, parts, source, skip=None):
        for key, value in source.items():
            if skip is None or key not in skip:
                self._add_one(parts, key, value)

    def _held_back(self, values):
        """Energy registers a little below the last value sent (``BACK_WH``, same meter): not
        sent. Home Assistant's total_increasing would read the step back as a meter reset and
        count the whole register again. A larger drop (a new meter) is sent."""
        last = self._energy
        held = None
        for key in values:
            v = values[key]
            if not isinstance(v, int) or not energy_register(key):
                continue
            was = last.get(key)
            if was is not None and was - BACK_WH <= v < was:
                if held is None:
                    held = []
                held.append(key)
                self.held_back += 1
                continue
            last[key] = v
        return held

    def _add_one(self, parts, key, value):
        ent = self._entities.get(key, 0)
        if ent == 0:
            ent = entity(key)
            if ent is not None and value_text(value, ent[KIND]) is None:
                return  # text (or None) under a numeric key: no entity yet
            self._entities[key] = ent
            if ent is not None:
                self._pending.append(key)
                if ent[OID] in self._removals:
                    self._removals.remove(ent[OID])  # it came back before it was cleared
        if ent is None:
            return
        text = value_text(value, ent[KIND])
        if text is not None:
            parts.append('"%s":%s' % (ent[OID], text))
            self._seen[key] = self._readings

    def _expire(self):
        """Entities whose value stopped coming: clear their config, forget them."""
        n = self._readings
        for key in [k for k, e in self._entities.items() if e is not None]:
            if n - self._seen.get(key, n) >= _STALE_READINGS:
                oid = self._entities.pop(key)[OID]
                self._seen.pop(key, None)
                if key in self._pending:
                    self._pending.remove(key)
                if oid not in self._removals:
                    self._removals.append(oid)

    def _identify(self, reading):
        meter = reading.meter_number
        if not meter and reading.system_title:
            meter = bytes(reading.system_title).hex()
        meter = _clean(str(meter or self.config.HOSTNAME or "meter"))
        node = "smartmeter_" + meter
        if node == self._node:
            return
        if self._client is not None:
            self._close()  # new meter: reconnect with the new last-will topic
            self._backoff.next = None
        self._node = node
        self._base = "%s/%s" % (self.config.MQTT_BASE_TOPIC.rstrip("/"), meter)
        model = reading.values.get(DEVICE_NAME)
        self._device = device_info(node, meter, reading.maker, model, reading.layout)
        self._entities = {}  # a new meter: only what it sends gets announced
        self._energy = {}  # ... and its registers start afresh
        self._pending = []
        self._seen = {}
        self._sweep = None
        self._removals = []

    # -- network (slow path, bounded per pass) --------------------------------------------------
    def poll(self, now_ms=None):
        """Connect when due, then send one discovery config or a few states; never blocks long.

        Bound per call: the TCP connect timeout (0.5 s; TLS 3 s) when a connection is started,
        otherwise a few ms of non-blocking socket work (see ``mqttclient``).
        """
        if not self.enabled or self._node is None:
            return
        now = self._ticks_ms() if now_ms is None else now_ms
        client = self._client
        if client is None:
            if self._backoff.due(now):
                self._connect(now)
            return
        was_up = client.state == UP
        try:
            client.service(now)
            if client.state != UP:
                return  # still waiting for CONNACK (its deadline is checked in service())
            if not was_up:
                self._on_up(client, now)
            if self._pending:
                key = self._pending[0]
                if client.publish(self._config_topic(key), self._config_payload(key), True, now):
                    self._pending.pop(0)
            elif self._removals or self._sweeping():
                oid = self._removals[0]
                topic = config_topic(self.config.MQTT_DISCOVERY_PREFIX, self._node, (oid,))
                if client.publish(topic, "", True, now):  # empty retained: HA drops the entity
                    self._removals.pop(0)
                    self.removed += 1
            else:
                n = 0
                while self._queue and n < _STATES_PER_POLL:
                    if not client.publish(self._base + "/state", self._queue[0], False, now):
                        break  # the broker is slow to take data: next pass
                    self._queue.pop(0)
                    self.sent += 1
                    n += 1
        except Exception as exc:  # noqa: BLE001 - any failure: drop the link, retry with backoff
            self.failed += 1
            self._close()
            if not was_up:
                self._connect_failed(exc, now)
                return
            if ticks_diff(now, self._up_since) >= _BACKOFF_MAX_MS:
                self._backoff.ok()  # it was a good link: retry soon
            # else the link flaps (e.g. a second client with our id): keep backing off
            self._set_error("error", "connection lost: " + _reason(exc))
            self._backoff.fail(now)
        self._sync()

    def _connect(self, now):
        cfg = self.config
        tls = bool(cfg.MQTT_TLS)
        try:
            ssl_context = self.ssl_context
            if tls and ssl_context is None:
                import ssl

                ssl_context = self.ssl_context = ssl.create_default_context()
            client = MqttClient(
                self.pool,
                cfg.MQTT_HOST,
                cfg.MQTT_PORT,
                _clean("%s-%s" % (cfg.HOSTNAME or "smartmeter", self._node[11:])),
                _KEEP_ALIVE_S,
                self._ticks_ms,
                ticks_diff,
                ssl_context if tls else None,
                _CONNECT_TIMEOUT_S,  # TLS: the handshake runs across passes (mqttclient)
            )
            self._client = client
            self._addr = client.start(
                (self._base + "/status", "offline", True),
                cfg.MQTT_USER or None,
                cfg.MQTT_PASSWORD if cfg.MQTT_USER else None,
                self._addr,
            )
        except Exception as exc:  # noqa: BLE001 - classified below, never raised into the loop
            self.failed += 1
            self._close()
            if type(exc).__name__ == "gaierror":
                self._addr = None
            self._connect_failed(exc, now)
            return
        self._sync()

    def _connect_failed(self, exc, now):
        tls = bool(self.config.MQTT_TLS)
        code = getattr(exc, "code", None)
        if code in (4, 5):
            self._set_error("auth", "login refused: check MQTT_USER/MQTT_PASSWORD")
        elif isinstance(exc, MemoryError) or isinstance(_cause(exc), MemoryError):
            self._set_error("error", "not enough memory to connect" + (" (TLS)" if tls else ""))
        else:
            self._set_error("error", "broker unreachable: " + _reason(exc))
        self._backoff.fail(now)
        self._sync()

    def _sweeping(self):
        """Queue the next unsent known entity for clearing (one per pass); False when none."""
        if self._sweep is None:
            at = self._sweep_at
            if at is None or self._readings < at:
                return False
            self._sweep_at = None
            self._sweep = known_object_ids()
        sent = [e[OID] for e in self._entities.values() if e is not None]
        for oid in self._sweep:
            if oid not in sent:
                self._removals.append(oid)
                return True
        self._sweep = None
        return False

    def _on_up(self, client, now):
        self.connects += 1
        self._sweep_at = self._readings + _SWEEP_AFTER
        self._sweep = None
        self._backoff.next = None  # the delay stays: a flapping link keeps backing off
        self._up_since = now
        self._pending = [k for k, e in self._entities.items() if e is not None]
        client.publish(self._base + "/status", "online", True, now)
        self.status.state = "ok"
        self.status.error = ""

    def _close(self):
        """Drop the connection without DISCONNECT (so the broker publishes the last will)."""
        client = self._client
        self._client = None
        if client is not None:
            client.close()

    def _set_error(self, kind, text):
        self.status.state = kind
        self.status.error = text[:80]

    def _sync(self):
        status = self.status
        status.sent = self.sent
        status.failed = self.failed
        status.queued = len(self._queue)
        status.dropped = self.dropped

    # -- discovery ------------------------------------------------------------------------------
    def _config_topic(self, key):
        prefix = self.config.MQTT_DISCOVERY_PREFIX
        return config_topic(prefix, self._node, self._entities[key])

    def _config_payload(self, key):
        """The discovery config of one entity (built when sent: one small dict at a time)."""
        return config_payload(self._entities[key], self._node, self._base, self._device)


def _cause(exc):
    return getattr(exc, "__cause__", None)


def _reason(exc):
    """Short text for a network failure (never contains settings values such as passwords)."""
    cause = _cause(exc) or exc
    name = type(cause).__name__
    num = getattr(cause, "errno", None)
    if name == "gaierror":
        return "cannot resolve MQTT_HOST"
    if name in ("timeout", "TimeoutError") or num in EAGAIN_CODES:
        return "timed out"
    if name == "ConnectionRefusedError" or num == ECONNREFUSED:
        return "connection refused"
    if name == "ConnectionResetError" or num == ECONNRESET:
        return "connection reset"
    text = str(cause) or name
    return text[:60]


def make(app, hw, cfg, state):
    """The MQTT output as ``app.build`` starts it (config.OUTPUTS)."""
    return MqttSink(cfg, hw.pool, state, hw.clock, hw.ssl_context)
