/** @odoo-module **/

import { Component, onMounted, onWillUnmount, useState, xml } from "@odoo/owl";
import { _t } from "@web/core/l10n/translation";
import { formatDuration } from "@web/core/l10n/dates";
import { registry } from "@web/core/registry";
import { useService } from "@web/core/utils/hooks";
import { standardWidgetProps } from "@web/views/widgets/standard_widget_props";

const TICK_MS = 30000;
// Below this many seconds, the 24-hour window badge turns orange.
const WINDOW_WARNING_SECONDS = 2 * 3600;

/**
 * Badges of a WhatsApp lead, on the kanban card and the form: time left to the first
 * response target (or how late it is) and the 24-hour window countdown. They tick every
 * 30 seconds. The lead reloads itself when the server says it changed (new message,
 * delivery status, assignment): on the form the chatter also fetches what is new.
 */
export class WhatsappSla extends Component {
    static template = xml`
        <div class="o_crm_whatsapp_sla d-flex flex-wrap gap-1" t-if="badges.length">
            <span t-foreach="badges" t-as="badge" t-key="badge.key"
                  t-attf-class="badge rounded-pill {{ badge.css }}" t-att-title="badge.title">
                <i t-attf-class="fa {{ badge.icon }} me-1" role="img" t-att-aria-label="badge.title"/>
                <t t-esc="badge.text"/>
            </span>
        </div>`;
    static props = { ...standardWidgetProps, live: { type: Boolean, optional: true } };

    setup() {
        this.state = useState({ now: luxon.DateTime.now() });
        this.busService = useService("bus_service");
        this.mailStore = useService("mail.store");
        this.orm = useService("orm");
        this.channel = null;
        const onUpdate = (payload) => this.onLeadUpdate(payload);
        onMounted(() => {
            this.timer = setInterval(() => (this.state.now = luxon.DateTime.now()), TICK_MS);
            this.busService.subscribe("crm_whatsapp_bridge/lead_update", onUpdate);
            this.followChannel();
        });
        onWillUnmount(() => {
            clearInterval(this.timer);
            this.busService.unsubscribe("crm_whatsapp_bridge/lead_update", onUpdate);
            if (this.channel) {
                this.busService.deleteChannel(this.channel);
            }
        });
    }

    /** On the form, listen to the lead's own channel: anyone who opens it gets its updates. */
    followChannel() {
        const channel = this.props.live && this.props.record.resId
            ? `crm_whatsapp_bridge.lead_${this.props.record.resId}` : null;
        if (channel !== this.channel) {
            if (this.channel) {
                this.busService.deleteChannel(this.channel);
            }
            if (channel) {
                this.busService.addChannel(channel);
            }
            this.channel = channel;
        }
    }

    async onLeadUpdate({ lead_id, message_ids }) {
        const record = this.props.record;
        if (lead_id !== record.resId) {
            return;
        }
        // An edit in progress is kept: the record reloads once it is saved or discarded.
        if (!record.dirty) {
            await record.load();
        }
        if (this.props.live) {
            const thread = this.mailStore.Thread.get({ model: "crm.lead", id: lead_id });
            if (thread) {
                await thread.fetchNewMessages();
            }
            if (message_ids?.length) {
                // Changed delivery states: the server renders the entries again, in this user's language.
                this.mailStore.insert(
                    await this.orm.call("crm.lead", "whatsapp_live_messages", [[lead_id], message_ids])
                );
            }
        }
    }

    get badges() {
        this.followChannel();
        const data = this.props.record.data;
        const now = this.state.now;
        const badges = [];
        if (data.whatsapp_sla_deadline) {
            const seconds = data.whatsapp_sla_deadline.diff(now, "seconds").seconds;
            badges.push(
                seconds >= 0
                    ? {
                          key: "sla",
                          css: seconds < 300 ? "text-bg-warning" : "text-bg-info",
                          icon: "fa-clock-o",
                          text: _t("Reply in %s", formatDuration(seconds, false)),
                          title: _t("First response target"),
                      }
                    : {
                          key: "sla",
                          css: "text-bg-danger",
                          icon: "fa-exclamation-triangle",
                          text: _t("Late by %s", formatDuration(-seconds, false)),
                          title: _t("First response target missed"),
                      }
            );
        }
        if (data.whatsapp_window_end) {
            const left = data.whatsapp_window_end.diff(now, "seconds").seconds;
            badges.push(
                left > 0
                    ? {
                          key: "window",
                          css: left < WINDOW_WARNING_SECONDS ? "text-bg-warning" : "text-bg-light",
                          icon: "fa-whatsapp",
                          text: _t("Window: %s left", formatDuration(left, true)),
                          title: _t("Free messages are allowed until 24 hours after the customer's last message"),
                      }
                    : {
                          key: "window",
                          css: "text-bg-secondary",
                          icon: "fa-whatsapp",
                          text: _t("Templates only"),
                          title: _t("The 24-hour window is closed: only approved templates can be sent"),
                      }
            );
        }
        return badges;
    }
}

export const whatsappSla = {
    component: WhatsappSla,
    extractProps: ({ attrs }) => ({ live: Boolean(attrs.live) }),
    fieldDependencies: [
        { name: "whatsapp_sla_deadline", type: "datetime" },
        { name: "whatsapp_window_end", type: "datetime" },
    ],
};

registry.category("view_widgets").add("crm_whatsapp_sla", whatsappSla);

