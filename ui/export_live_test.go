package ui

import "image"

// Test hooks of the live view.

func (w *Workstation) LiveStart(input string, poll bool) {
	w.live.setInput(input)
	w.live.poll.SetChecked(poll)
	w.live.start()
}

func (w *Workstation) LiveStop() { w.live.stop() }

func (w *Workstation) LiveOut() string { return w.live.out }

func (w *Workstation) LiveImage() image.Image { return w.live.latestImg.Image }

func (w *Workstation) LiveText() (status, latest, counts, fails, bads string) {
	v := w.live
	return v.status.Text, v.latest.Text, v.counts.Text, v.fails.Text, v.bads.Text
}

func (w *Workstation) LiveOptions(recursive bool, webhook, mqttBroker string) {
	w.live.recursive.SetChecked(recursive)
	w.live.webhook.SetText(webhook)
	w.live.mqttBroker.SetText(mqttBroker)
}
