package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/dmad/workstation/core/verdict"
)

// MQTTOptions configures an MQTT output (MQTT 5, e.g. Mosquitto 2).
type MQTTOptions struct {
	// Broker is the server URL: mqtt://host:1883, or tls://host:8883.
	Broker string
	// ClientID identifies the client to the broker; it must be unique per
	// broker (default "dmad-workstation").
	ClientID string
	// Topic is the topic template: {category}, {decision} and {file} are
	// replaced by the verdict's values, with '/', '+' and '#' in them
	// turned into '_' (default "dmad/verdicts/{category}").
	Topic string
	// QoS is 0 (at most once), 1 (at least once) or 2 (exactly once).
	QoS byte
	// Retain asks the broker to keep the last verdict of each topic.
	Retain bool
	// Username and Password, when the broker wants them.
	Username, Password string
	// KeepAlive in seconds (default 30).
	KeepAlive uint16
	// ReconnectDelay is the wait between connection attempts (default 2s).
	ReconnectDelay time.Duration
	// AckTimeout bounds one publish attempt (default 5s); see Publish.
	AckTimeout time.Duration
	// Logger receives connection changes; nil: slog.Default().
	Logger *slog.Logger
}

// MQTT publishes each verdict as JSON to a topic of a broker. The
// connection is made in the background and remade whenever it drops;
// Publish waits for it (until its context ends).
type MQTT struct {
	opts MQTTOptions
	cm   *autopaho.ConnectionManager
	stop context.CancelFunc
}

// DialMQTT starts connecting to the broker and returns without waiting:
// a broker that is down at start is retried, not fatal. Use
// AwaitConnection to wait for the first connection.
func DialMQTT(opts MQTTOptions) (*MQTT, error) {
	u, err := url.Parse(opts.Broker)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("mqtt: broker URL %q: want mqtt://host:port or tls://host:port", opts.Broker)
	}
	if opts.QoS > 2 {
		return nil, fmt.Errorf("mqtt: QoS %d: want 0, 1 or 2", opts.QoS)
	}
	if opts.Topic == "" {
		opts.Topic = "dmad/verdicts/{category}"
	}
	if strings.ContainsAny(opts.Topic, "+#") {
		return nil, fmt.Errorf("mqtt: topic %q: wildcards + and # are for subscribing, not publishing", opts.Topic)
	}
	if opts.ClientID == "" {
		opts.ClientID = "dmad-workstation"
	}
	if opts.KeepAlive == 0 {
		opts.KeepAlive = 30
	}
	if opts.ReconnectDelay <= 0 {
		opts.ReconnectDelay = 2 * time.Second
	}
	if opts.AckTimeout <= 0 {
		opts.AckTimeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	log := opts.Logger.With("broker", opts.Broker)
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     opts.KeepAlive,
		CleanStartOnInitialConnection: true,
		ReconnectBackoff:              autopaho.NewConstantBackoff(opts.ReconnectDelay),
		ConnectTimeout:                10 * time.Second,
		OnConnectionUp: func(*autopaho.ConnectionManager, *paho.Connack) {
			log.Info("mqtt connected")
		},
		OnConnectError: func(err error) { log.Warn("mqtt connection attempt failed; retrying", "err", err) },
		ClientConfig:   paho.ClientConfig{ClientID: opts.ClientID},
	}
	if opts.Username != "" {
		cfg.ConnectUsername, cfg.ConnectPassword = opts.Username, []byte(opts.Password)
	}
	ctx, stop := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, cfg)
	if err != nil {
		stop()
		return nil, fmt.Errorf("mqtt %s: %w", opts.Broker, err)
	}
	return &MQTT{opts: opts, cm: cm, stop: stop}, nil
}

// Name is "mqtt " and the broker URL.
func (m *MQTT) Name() string { return "mqtt " + m.opts.Broker }

// AwaitConnection waits until the client is connected or ctx ends.
func (m *MQTT) AwaitConnection(ctx context.Context) error {
	if err := m.cm.AwaitConnection(ctx); err != nil {
		return fmt.Errorf("mqtt %s: not connected: %w", m.opts.Broker, err)
	}
	return nil
}

// Topic is the topic v is published to.
func (m *MQTT) Topic(v verdict.Verdict) string { return Topic(m.opts.Topic, v) }

// Topic fills a topic template with v's category, decision and file name.
func Topic(template string, v verdict.Verdict) string {
	clean := strings.NewReplacer("/", "_", "+", "_", "#", "_")
	cat := v.Category
	if cat == "" {
		cat = "none"
	}
	return strings.NewReplacer(
		"{category}", clean.Replace(cat),
		"{decision}", clean.Replace(v.Decision),
		"{file}", clean.Replace(filepath.Base(v.Path)),
	).Replace(template)
}

// Publish sends v as JSON, waiting for the connection if it is down and,
// for QoS 1 and 2, for the broker's acknowledgement. An attempt that gets
// no acknowledgement within AckTimeout (the connection died under it) is
// made again on the next connection, until ctx ends: QoS 1 and 2 verdicts
// are delivered at least once.
func (m *MQTT) Publish(ctx context.Context, v verdict.Verdict) error {
	payload, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("mqtt: encode verdict of %s: %w", v.Path, err)
	}
	topic := m.Topic(v)
	for attempt := 0; ; attempt++ {
		if err := m.AwaitConnection(ctx); err != nil {
			return err
		}
		actx, cancel := context.WithTimeout(ctx, m.opts.AckTimeout)
		_, err = m.cm.Publish(actx, &paho.Publish{Topic: topic, QoS: m.opts.QoS, Retain: m.opts.Retain, Payload: payload,
			Properties: &paho.PublishProperties{ContentType: "application/json"}})
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("mqtt %s: publish to %s: %w (last error: %v)", m.opts.Broker, topic, ctx.Err(), err)
		}
		m.opts.Logger.Debug("mqtt publish failed; trying again", "topic", topic, "err", err)
		select { // not a busy loop while the connection settles
		case <-ctx.Done():
		case <-time.After(Backoff(attempt, 20*time.Millisecond, time.Second)):
		}
	}
}

// Close disconnects from the broker.
func (m *MQTT) Close(ctx context.Context) error {
	defer m.stop()
	err := m.cm.Disconnect(ctx)
	if err != nil && !errors.Is(err, autopaho.ConnectionDownError) {
		return fmt.Errorf("mqtt %s: disconnect: %w", m.opts.Broker, err)
	}
	return nil
}
