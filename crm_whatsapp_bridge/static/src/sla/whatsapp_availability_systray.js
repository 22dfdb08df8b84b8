/** @odoo-module **/

import { Component, onWillStart, useState, xml } from "@odoo/owl";
import { _t } from "@web/core/l10n/translation";
import { registry } from "@web/core/registry";
import { user } from "@web/core/user";
import { useService } from "@web/core/utils/hooks";

/**
 * The salesperson's "available for WhatsApp" switch, in the systray (so also above the
 * lead kanban): off, no new WhatsApp or Lead Ads lead is assigned to them.
 */
export class WhatsappAvailability extends Component {
    static template = xml`
        <div class="o_crm_whatsapp_availability d-flex align-items-center px-2" t-if="state.loaded">
            <button type="button" class="btn btn-sm d-flex align-items-center gap-1"
                    t-att-class="state.available ? 'btn-success' : 'btn-outline-secondary'"
                    t-att-title="title" t-att-aria-pressed="state.available ? 'true' : 'false'"
                    t-on-click="toggle">
                <i class="fa fa-whatsapp" role="img" aria-hidden="true"/>
                <span class="d-none d-md-inline" t-esc="label"/>
            </button>
        </div>`;
    static props = {};

    setup() {
        this.orm = useService("orm");
        this.state = useState({ loaded: false, available: false });
        onWillStart(async () => {
            const [values] = await this.orm.read("res.users", [user.userId], ["whatsapp_available"]);
            this.state.available = values.whatsapp_available;
            this.state.loaded = true;
        });
    }

    get label() {
        return this.state.available ? _t("Available") : _t("Away");
    }

    get title() {
        return this.state.available
            ? _t("You get new WhatsApp leads during your working hours. Click to stop.")
            : _t("You get no new WhatsApp leads. Click to be available again.");
    }

    async toggle() {
        this.state.available = await this.orm.call("res.users", "action_whatsapp_set_available", [
            !this.state.available,
        ]);
    }
}

registry.category("systray").add(
    "crm_whatsapp_bridge.availability",
    { Component: WhatsappAvailability, isDisplayed: () => user.isInternalUser },
    { sequence: 40 }
);
