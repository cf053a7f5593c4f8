package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/dmad/workstation/core/publish/mqtttest"
	"github.com/dmad/workstation/core/verdict"
)

func checkPayload(t *testing.T, m *paho.Publish, want verdict.Verdict) {
	t.Helper()
	var got verdict.Verdict
	if err := json.Unmarshal(m.Payload, &got); err != nil {
		t.Fatalf("payload on %s is not a verdict: %v: %s", m.Topic, err, m.Payload)
	}
	if got.Path != want.Path || got.Score != want.Score || got.Decision != want.Decision || got.Category != want.Category ||
		!got.FileClosed.Equal(want.FileClosed) || got.ModelVersion != want.ModelVersion {
		t.Errorf("payload %+v, want %+v", got, want)
	}
}

func TestMQTTPublishToRealBroker(t *testing.T) {
	b := mqtttest.Start(t)
	for _, qos := range []byte{0, 1, 2} {
		t.Run(fmt.Sprintf("qos%d", qos), func(t *testing.T) {
			msgs := b.Subscribe("plant1/#")
			m, err := DialMQTT(MQTTOptions{Broker: b.URL(), ClientID: fmt.Sprintf("dmad-test-%d", qos),
				Topic: "plant1/{category}/{decision}", QoS: qos, Logger: quietLog()})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(context.Background())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			v := sampleVerdict("a.png")
			v.Category = "bot/tle+x" // characters that would change the topic's meaning
			if err := m.Publish(ctx, v); err != nil {
				t.Fatal(err)
			}
			got := mqtttest.Receive(t, msgs)
			if got.Topic != "plant1/bot_tle_x/fail" {
				t.Errorf("topic %q, want plant1/bot_tle_x/fail", got.Topic)
			}
			if got.QoS != qos {
				t.Errorf("delivered with QoS %d, want %d", got.QoS, qos)
			}
			checkPayload(t, got, v)
		})
	}
}

func TestMQTTReconnectsAfterBrokerRestart(t *testing.T) {
	b := mqtttest.Start(t)
	m, err := DialMQTT(MQTTOptions{Broker: b.URL(), ClientID: "dmad-test-reconnect", Topic: "line/{file}", QoS: 1,
		Retain: true, ReconnectDelay: 100 * time.Millisecond, AckTimeout: time.Second, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.AwaitConnection(ctx); err != nil {
		t.Fatal(err)
	}
	b.Stop()
	// Publish while the broker is down: it waits for the reconnection.
	v := sampleVerdict("during-outage.png")
	done := make(chan error, 1)
	go func() { done <- m.Publish(ctx, v) }()
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Publish returned %v while the broker was down", err)
	default:
	}
	b.Restart()
	if err := <-done; err != nil {
		t.Fatalf("Publish after the broker came back: %v", err)
	}
	// The message was retained by the restarted broker: a subscriber that
	// comes now receives it.
	got := mqtttest.Receive(t, b.Subscribe("line/#"))
	if got.Topic != "line/during-outage.png" {
		t.Errorf("topic %q", got.Topic)
	}
	checkPayload(t, got, v)
}

func TestMQTTOptionErrors(t *testing.T) {
	for _, o := range []MQTTOptions{
		{Broker: "not a url"},
		{Broker: "mqtt://127.0.0.1:1", QoS: 3},
		{Broker: "mqtt://127.0.0.1:1", Topic: "a/#"},
	} {
		if m, err := DialMQTT(o); err == nil {
			m.Close(context.Background())
			t.Errorf("DialMQTT(%+v) succeeded", o)
		}
	}
	// A broker that is not there: Publish gives up at its deadline.
	m, err := DialMQTT(MQTTOptions{Broker: "mqtt://127.0.0.1:1", ReconnectDelay: 50 * time.Millisecond, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := m.Publish(ctx, sampleVerdict("a.png")); err == nil {
		t.Error("Publish to no broker succeeded")
	}
}

func TestTopic(t *testing.T) {
	v := verdict.Verdict{Path: "/in/x#1.png", Decision: verdict.Pass}
	if got := Topic("a/{category}/{decision}/{file}", v); got != "a/none/pass/x_1.png" {
		t.Errorf("Topic = %q", got)
	}
}
